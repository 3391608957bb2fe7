"""gptrelay: a self-hosted, streaming relay for the OpenAI API."""

__version__ = "0.1.0"
