"""``gptrelay check``: is every upstream reachable with every key, which models, how fast."""

from __future__ import annotations

import asyncio
import sys

import click

from gptrelay.cli.keys import dump


@click.command()
@click.option("--config", "config_file", metavar="PATH",
              help="The upstreams' file (default gptrelay.toml if there is one, env GPTRELAY_CONFIG).")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for each answer.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per key.")
@click.option("--env-file", default=".env", show_default=True, help="The .env file to read.")
def check(config_file: str | None, timeout: float, as_json: bool, env_file: str) -> None:
    """Ask each upstream, with each of its keys, for its models; exit 0 only if all answered.

    Reads the upstreams as `gptrelay serve` does: gptrelay.toml (or --config,
    GPTRELAY_CONFIG), else OPENAI_API_KEY and OPENAI_BASE_URL. Keys are shown
    masked.

    \b
    Examples:
      gptrelay check
      gptrelay check --config /etc/gptrelay.toml --json
    """
    from gptrelay.cli.main import load_settings  # main imports this module
    from gptrelay.upstream.config import load
    from gptrelay.upstream.pool import Pool
    from gptrelay.upstream.probe import probe_all
    from gptrelay.watchdog import Sweeper

    settings = load_settings(env_file, config_file=config_file, connect_timeout=timeout,
                             first_byte_timeout=timeout, read_timeout=timeout)
    config = load(settings.config_file) if settings.config_file is not None else None

    async def go() -> list[dict[str, object]]:
        sweeper = Sweeper.for_limits(timeout)
        try:
            return [found.as_json() for found in await probe_all(Pool(settings, sweeper, config))]
        finally:
            sweeper.close()

    rows = asyncio.run(go())
    if as_json:
        dump(rows)
    else:
        table(rows)
    sys.exit(0 if all(row["ok"] for row in rows) else 1)


def table(rows: list[dict[str, object]]) -> None:
    lines = [["UPSTREAM", "KEY", "RESULT", "STATUS", "TIME", "MODELS"]]
    for row in rows:
        models = row["models"]
        assert isinstance(models, list)
        shown = models[:6] + (["…"] if len(models) > 6 else [])
        detail = f"{len(models)}: {', '.join(shown)}" if row["ok"] else str(row["error"])
        lines.append([str(row["upstream"]), str(row["key"]), "ok" if row["ok"] else "failed",
                      str(row["status"] or "-"), f"{row['seconds']:.2f} s", detail])
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    for line in lines:
        click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[5]]))
