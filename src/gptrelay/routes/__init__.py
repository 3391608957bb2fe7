"""The relay's endpoints, one module each."""
