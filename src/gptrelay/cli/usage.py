"""``gptrelay usage``: the usage recorded, grouped by key, model or UTC day, or per request.

Reads the same settings as ``serve`` (flags, environment, ``.env``) but needs
no upstream key; migrates the database, then reads. Mistakes are one line on
standard error and exit status 1.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click

from gptrelay.cli.keys import dump, one_line_errors
from gptrelay.errors import BadRequest
from gptrelay.usage.queries import parse_date

BY = ("key", "model", "day", "request")
NUMBERS = {"requests", "prompt_tokens", "completion_tokens", "total_tokens", "status"}
HEADERS = {"requests": "REQUESTS", "prompt_tokens": "PROMPT", "completion_tokens": "COMPLETION",
           "total_tokens": "TOTAL", "estimated": "ESTIMATED"}


def fetch(env_file: str, by: str, key: str | None, since: datetime | None, until: datetime | None,
          owner: bool = False) -> list[dict[str, Any]]:
    """Load the settings, migrate the database, read the rows."""
    from gptrelay.cli.main import load_settings  # main imports this module
    from gptrelay.db.engine import create_engine
    from gptrelay.db.schema import migrate
    from gptrelay.usage.queries import usage_rows

    settings = load_settings(env_file, serving=False)

    async def go() -> list[dict[str, Any]]:
        await migrate(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            return await usage_rows(engine, by, key, since, until, owner=owner)  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "(no key)" if field == "key" else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(rows: list[dict[str, Any]]) -> None:
    fields = list(rows[0])
    lines = [[HEADERS.get(field, field.upper()) for field in fields],
             *([_cell(field, row[field]) for field in fields] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(fields))]
    for line in lines:
        cells = [cell.rjust(width) if field in NUMBERS else cell.ljust(width)
                 for field, cell, width in zip(fields, line, widths, strict=True)]
        click.echo("  ".join(cells).rstrip())


@click.command()
@click.option("--key", metavar="NAME", help="Only the requests made with the key named NAME.")
@click.option("--owner", is_flag=True,
              help="Only the requests made with the owner's key, AUTHORIZATION_KEY (shown as (no key)).")
@click.option("--since", metavar="DATE", help="From DATE on (inclusive): ISO 8601, UTC when no zone is given.")
@click.option("--until", metavar="DATE", help="Before DATE (exclusive): ISO 8601, UTC when no zone is given.")
@click.option("--by", "by", default="key", show_default=True, metavar="key|model|day|request",
              help="Group by key, model or UTC day, or list each request.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of rows.")
@click.option("--env-file", default=".env", show_default=True, help="The .env file to read.")
def usage(key: str | None, owner: bool, since: str | None, until: str | None, by: str, as_json: bool,
          env_file: str) -> None:
    """Show the usage recorded: requests and tokens per key, model or UTC day, or each request.

    Usage lives in the database at DATABASE_URL (default sqlite:///gptrelay.db),
    read from flags, the environment and .env like `gptrelay serve` does.

    \b
    Examples:
      gptrelay usage                                   # per key, all time
      gptrelay usage --by day --since 2026-11-01 --until 2026-12-01
      gptrelay usage --key alice --by model
      gptrelay usage --owner --by day                  # the owner's key (AUTHORIZATION_KEY) alone
      gptrelay usage --by request --since 2026-11-25T08:00 --json | jq '.[] | select(.outcome != "ok")'
    """
    with one_line_errors():
        if by not in BY:
            raise BadRequest(f"bad --by {by!r}: use key, model, day or request")
        if key is not None and owner:
            raise BadRequest("give --key or --owner, not both")
        start, end = parse_date("--since", since), parse_date("--until", until)
        if start is not None and end is not None and start >= end:
            raise BadRequest("--since must be before --until")
        rows = fetch(env_file, by, key, start, end, owner)
    if as_json:
        dump(rows)
        return
    if not rows:
        filtered = " for these options" if key or owner or since or until else ""
        click.echo(f"No usage recorded{filtered}.")
        return
    table(rows)
