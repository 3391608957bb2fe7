"""The ``gptrelay`` command: ``main.py`` holds the group and ``serve``."""

from gptrelay.cli.main import main

__all__ = ["main"]
