"""Command-line parsing shared by the candidate stacks."""

from __future__ import annotations

import argparse


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000/v1",
                        help="upstream base URL (the fake)")
    return parser.parse_args()
