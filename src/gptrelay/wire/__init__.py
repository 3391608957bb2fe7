"""Pure stream code: server-sent events, OpenAI's chunks, the /chat frames.

No I/O, and nothing of gptrelay imported but ``errors``.
"""
