"""The ``vixml`` command: assembles the sub-commands and turns errors into exit codes.

Exit codes: 0 success, 1 bad input or failed validation (the message names file, line and field), 2 usage.
Only this layer exits; the library raises :class:`vixml.errors.VixmlError` subclasses.
"""

from __future__ import annotations

import logging
import sys

import click
import typer

from vixml import __version__
from vixml.cli import data as data_cmd
from vixml.cli import evaluate as evaluate_cmd
from vixml.errors import DataError, VixmlError

__all__ = ["app", "main"]

app = typer.Typer(
    name="vixml",
    help="Extreme multi-label classification with LLM and vision-enhanced dual encoders (ViXML).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.command("evaluate")(evaluate_cmd.evaluate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vixml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to ``sys.exit``)."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="vixml", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except DataError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except VixmlError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
