"""The HTTP side facing clients: CORS, which headers cross, request bodies, streamed responses, connections."""
