"""``gptrelay keys``: make, list, show, change and revoke access keys.

Reads the same settings as ``serve`` (flags, environment, ``.env``) but needs
no upstream key; migrates the database, then acts. Mistakes are one line on
standard error and exit status 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from gptrelay.errors import BadRequest, RelayError

if TYPE_CHECKING:  # imported when a command runs: `gptrelay serve` and --help need no SQLAlchemy
    from gptrelay.auth.keys import KeyFields, KeyRecord, KeyStore

LIMITS = ("rpm", "tpm", "daily_tokens", "monthly_tokens")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def one_line_errors() -> Iterator[None]:
    try:
        yield
    except RelayError as error:
        click.echo(f"gptrelay: {error.message}", err=True)
        sys.exit(1)


def with_store(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Load the settings, migrate the database, run ``action`` on its key store."""
    from gptrelay.auth.keys import KeyStore
    from gptrelay.cli.main import load_settings  # main imports this module
    from gptrelay.db.engine import create_engine
    from gptrelay.db.schema import migrate

    env_file = click.get_current_context().find_root().meta.get("gptrelay.env_file", ".env")
    settings = load_settings(env_file, serving=False)

    async def go() -> T:
        await migrate(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            return await action(KeyStore(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _limit(option: str, text: str) -> int:
    value = text.strip()
    if value == "":
        return 0
    if not (value.isascii() and value.isdigit()):  # "²" is a digit to isdigit(), and no number to int()
        raise BadRequest(f"bad {option} {text!r}: use a whole number, or 0 for no limit")
    return int(value)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def fields_from(options: dict[str, Any], *, updating: bool) -> KeyFields:
    """The command's options as ``KeyFields``: only those given; ``0`` or ``""`` removes a limit."""
    from gptrelay.auth.keys import KeyFields, parse_duration, parse_when

    fields = KeyFields()
    for name in LIMITS:
        if options[name] is not None:
            fields[name] = _limit("--" + name.replace("_", "-"), options[name])  # type: ignore[literal-required]
    if options["models"] is not None:
        fields["models"] = _list(options["models"])
    if options["origins"] is not None:
        fields["origins"] = _list(options["origins"])
    expires, ttl = options["expires"], options["ttl"]
    if expires is not None and ttl is not None:
        raise BadRequest("give --expires or --ttl, not both")
    if expires is not None:
        fields["expires_at"] = parse_when(expires) if expires.strip() else None
    if ttl is not None:
        duration = parse_duration(ttl)
        fields["expires_at"] = datetime.now(UTC) + duration if duration else None
    if updating and not fields:
        raise BadRequest("nothing to change: give at least one option (see gptrelay keys update --help)")
    return fields


def key_options(command: F) -> F:
    """The options ``create`` and ``update`` share."""
    options = [
        click.option("--rpm", metavar="N", help="At most N requests in any 60 seconds."),
        click.option("--tpm", metavar="N", help="At most N tokens in any 60 seconds."),
        click.option("--daily-tokens", metavar="N", help="At most N tokens per UTC day."),
        click.option("--monthly-tokens", metavar="N", help="At most N tokens per UTC month."),
        click.option("--models", metavar="PATTERNS", help="Comma-separated model names or * patterns (gpt-4o*)."),
        click.option("--origins", metavar="ORIGINS",
                     help="Comma-separated browser origins (https://app.example.com)."),
        click.option("--expires", metavar="WHEN", help="ISO 8601 date or time; UTC when no zone is given."),
        click.option("--ttl", metavar="DURATION", help="Expire after 90s, 30m, 12h, 7d, ..."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def dump(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return ",".join(value) if value else "any"
    return str(value)


def describe(record: KeyRecord) -> list[tuple[str, str]]:
    from gptrelay.auth.keys import iso

    return [
        ("name", record.name), ("status", record.status()), ("created_at", _cell(iso(record.created_at))),
        ("expires_at", iso(record.expires_at) or "never"), ("revoked_at", _cell(iso(record.revoked_at))),
        *((name, _cell(getattr(record, name))) for name in LIMITS),
        ("models", _cell(record.models)), ("origins", _cell(record.origins)),
    ]


def show_record(record: KeyRecord) -> None:
    for label, value in describe(record):
        click.echo(f"{label:<16}{value}")


def table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--env-file", default=".env", show_default=True, help="The .env file to read.")
@click.pass_context
def keys(ctx: click.Context, env_file: str) -> None:
    """Make, list, change and revoke access keys.

    Keys live in the database at DATABASE_URL (default sqlite:///gptrelay.db),
    read from flags, the environment and .env like `gptrelay serve` does, and
    take effect on running relays that share it. A key is shown once, when it
    is made, and stored only as a hash.

    \b
    Examples:
      gptrelay keys create alice --rpm 60 --models 'gpt-4o*' --ttl 30d
      KEY=$(gptrelay keys create ci-bot | tail -n 1)
      gptrelay keys list
      gptrelay keys update alice --rpm 0 --daily-tokens 200000
      gptrelay keys revoke alice
    """
    ctx.find_root().meta["gptrelay.env_file"] = env_file


@keys.command()
@click.argument("name")
@key_options
def create(name: str, as_json: bool, **options: Any) -> None:
    """Make a key named NAME and print it, alone on the last line.

    NAME is 1-64 characters of A-Z a-z 0-9 . _ -. With no options the key
    has no limits and never expires.

    \b
    Examples:
      gptrelay keys create alice
      gptrelay keys create page --origins https://app.example.com --rpm 20
      gptrelay keys create trial --tpm 10000 --daily-tokens 100000 --expires 2026-12-31
      KEY=$(gptrelay keys create ci-bot --ttl 12h | tail -n 1)
      gptrelay keys create bob --json      # {"name": ..., "key": "gr-..."}
    """
    from gptrelay.auth.keys import check_name, iso

    with one_line_errors():
        fields = fields_from(options, updating=False)
        check_name(name)
        record, key = with_store(lambda store: store.create(name, fields))
    if as_json:
        dump(record.as_json() | {"key": key})
        return
    limits = [f"{label} {value}" for label, value in describe(record)[5:] if value not in ("-", "any")]
    expiry = f"expires {iso(record.expires_at)}" if record.expires_at else "never expires"
    click.echo(f"Made key {record.name}: {', '.join([*limits, expiry])}.")
    click.echo("It is shown only this once (the relay keeps only its hash):")
    click.echo(key)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_keys(as_json: bool) -> None:
    """List every key, revoked and expired ones too (never the keys themselves).

    \b
    Examples:
      gptrelay keys list
      gptrelay keys list --json | jq -r '.[] | select(.revoked | not) | .name'
    """
    with one_line_errors():
        records = with_store(lambda store: store.list())
    if as_json:
        dump([record.as_json() for record in records])
        return
    if not records:
        click.echo("No keys yet: make one with `gptrelay keys create NAME`.")
        return
    header = ["NAME", "STATUS", "CREATED", "EXPIRES", "RPM", "TPM", "DAILY", "MONTHLY", "MODELS", "ORIGINS"]
    table([header, *([value for label, value in describe(r) if label != "revoked_at"] for r in records)])


@keys.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(name: str, as_json: bool) -> None:
    """Show the key named NAME: its state and limits (never the key itself).

    \b
    Examples:
      gptrelay keys show alice
      gptrelay keys show alice --json
    """
    with one_line_errors():
        record = with_store(lambda store: store.get(name))
    if as_json:
        dump(record.as_json())
    else:
        show_record(record)


@keys.command()
@click.argument("name")
@key_options
def update(name: str, as_json: bool, **options: Any) -> None:
    """Change the limits, lists or expiry of the key named NAME.

    Options left out stay as they are; 0 or "" removes a limit, a list or
    the expiry. The key itself does not change.

    \b
    Examples:
      gptrelay keys update alice --rpm 120 --models 'gpt-4o*,o3-mini'
      gptrelay keys update alice --tpm 0 --origins ''
      gptrelay keys update alice --ttl 7d        # expires a week from now
      gptrelay keys update alice --expires ''    # never expires
    """
    with one_line_errors():
        fields = fields_from(options, updating=True)
        record = with_store(lambda store: store.update(name, fields))
    if as_json:
        dump(record.as_json())
    else:
        click.echo(f"Updated key {record.name}:")
        show_record(record)


@keys.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the key named NAME for good: every relay sharing the database refuses it.

    \b
    Example:
      gptrelay keys revoke alice
    """
    with one_line_errors():
        record = with_store(lambda store: store.revoke(name))
    click.echo(f"Revoked key {record.name}.")
