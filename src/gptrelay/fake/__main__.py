"""``python -m gptrelay.fake --port 9000``: run the fake upstream on its own."""

from __future__ import annotations

import click
from aiohttp import web

from gptrelay.fake.app import FakeUpstream


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9000, show_default=True, type=int)
@click.option("--pace-ms", default=0.0, show_default=True, help="Pause between streamed pieces.")
@click.option("--no-log", is_flag=True, help="Keep no request log (for long benchmark runs).")
def main(host: str, port: int, pace_ms: float, no_log: bool) -> None:
    """Serve a fake OpenAI API whose replies are simulated."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    fake = FakeUpstream(pace_ms=pace_ms, log=not no_log)
    web.run_app(fake.app(), host=host, port=port, print=None, access_log=None,
                handler_cancellation=True, backlog=4096)


if __name__ == "__main__":
    main()
