"""The ``gptrelay`` command."""

from __future__ import annotations

import sys
from typing import Any

import click
from click.core import ParameterSource
from pydantic import ValidationError

from gptrelay import __version__
from gptrelay.cli.check import check
from gptrelay.cli.keys import keys
from gptrelay.cli.usage import usage
from gptrelay.observe.logs import configure as configure_logging
from gptrelay.settings import Settings, unknown_in_env_file

FLAGS = {"host": "--host", "port": "--port", "workers": "--workers", "config_file": "--config"}


def describe(error: ValidationError) -> list[str]:
    """One line per invalid setting, naming it as the user wrote it."""
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else "settings"
        name = FLAGS.get(name, name)
        message = str(problem["msg"]).removeprefix("Value error, ")
        given = problem.get("input")
        secret = "KEY" in name.upper()
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and not secret else ""
        if repr(given) in message:
            shown = ""
        lines.append(f"{name}: {message}{shown}")
    return lines


def check_env_file(env_file: str, named: bool) -> None:
    """Warn of each name in ``env_file`` that the relay does not read. A file named on the command
    line must exist; the default ``.env`` need not."""
    try:
        unknown = unknown_in_env_file(env_file)
    except OSError as error:
        if not named:
            return  # Settings reads what it can, as it always has
        click.echo(f"gptrelay: cannot read --env-file {env_file}: {error.strerror}", err=True)
        sys.exit(2)
    for line in unknown:
        click.echo(f"gptrelay: {env_file}: {line}", err=True)


def load_settings(env_file: str | None, env_file_named: bool = False, serving: bool = True,
                  **overrides: Any) -> Settings:
    """Flags over environment over ``.env``; exits with one line per mistake.

    ``serving=False`` skips what only stops a relay from serving (no upstream key,
    a public bind without an access key): the commands that manage keys or read
    usage need neither.
    """
    if env_file is not None:
        check_env_file(env_file, env_file_named)
    given = {name: value for name, value in overrides.items() if value is not None and value is not False}
    try:
        settings = Settings(_env_file=env_file, **given)  # type: ignore[call-arg]
    except ValidationError as error:
        for line in describe(error):
            click.echo(f"gptrelay: {line}", err=True)
        sys.exit(2)
    problems = settings.problems() if serving else []
    for line in problems:
        click.echo(f"gptrelay: {line}", err=True)
    if problems:
        sys.exit(2)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gptrelay", message="%(prog)s %(version)s")
def main() -> None:
    """gptrelay: a self-hosted, streaming relay for the OpenAI API.

    Configuration comes from flags, then environment variables, then a .env
    file in the working directory (OPENAI_API_KEY, AUTHORIZATION_KEY, ...).
    """


@main.command()
@click.option("--host", help="Address to bind (default 127.0.0.1, env HOST).")
@click.option("--port", type=int, help="Port to listen on (default 3666, env SERVER_PORT or PORT).")
@click.option("--workers", type=int, help="Processes sharing the port (default 1, env WORKERS).")
@click.option("--allow-no-auth", is_flag=True,
              help="Serve on a non-loopback address without an access key.")
@click.option("--demo", is_flag=True, help="Use a built-in fake upstream: simulated replies, no key needed.")
@click.option("--env-file", default=".env", show_default=True, help="The .env file to read.")
@click.option("--config", "config_file", metavar="PATH",
              help="The upstreams' file (default gptrelay.toml if there is one, env GPTRELAY_CONFIG).")
def serve(host: str | None, port: int | None, workers: int | None, allow_no_auth: bool, demo: bool,
          env_file: str, config_file: str | None) -> None:
    """Start the relay in the foreground.

    \b
    Examples:
      gptrelay serve                      # 127.0.0.1:3666, settings from .env
      gptrelay serve --host 0.0.0.0 --port 8080
      gptrelay serve --demo               # try it without an OpenAI key
      gptrelay serve --config /etc/gptrelay.toml   # several upstreams
    """
    named = click.get_current_context().get_parameter_source("env_file") is not ParameterSource.DEFAULT
    settings = load_settings(env_file, named, host=host, port=port, workers=workers,
                             allow_no_auth=allow_no_auth, demo=demo, config_file=config_file)
    configure_logging(settings)
    from gptrelay.server import run

    run(settings)


main.add_command(keys)
main.add_command(check)
main.add_command(usage)

if __name__ == "__main__":  # pragma: no cover
    main()
