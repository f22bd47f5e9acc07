"""The ``vixml`` command: assembles the sub-commands and turns errors into exit codes.

Exit codes: 0 success, 1 bad input or failed validation (the message names file, line and field), 2 usage,
130 training stopped by Ctrl-C / SIGTERM after a checkpoint (``--resume`` continues it).
Only this layer exits; the library raises :class:`vixml.errors.VixmlError` subclasses.
"""

from __future__ import annotations

import logging
import sys

import typer

from vixml import __version__
from vixml.cli import data as data_cmd
from vixml.cli import demo as demo_cmd
from vixml.cli import doctor as doctor_cmd
from vixml.cli import evaluate as evaluate_cmd
from vixml.cli import export as export_cmd
from vixml.cli import images as images_cmd
from vixml.cli import images_embed
from vixml.cli import labels as labels_cmd
from vixml.cli import memory as memory_cmd
from vixml.cli import report as report_cmd
from vixml.cli import serve as serve_cmd
from vixml.cli import train as train_cmd
from vixml.cli.help import flags_take_no_value
from vixml.errors import TrainingInterrupted, VixmlError

__all__ = ["app", "main"]

app = typer.Typer(
    name="vixml",
    help="Extreme multi-label classification with LLM and vision-enhanced dual encoders (ViXML).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
images_cmd.app.command("embed")(images_embed.embed)
app.add_typer(images_cmd.app, name="images")
app.add_typer(labels_cmd.app, name="labels")
app.add_typer(train_cmd.config_app, name="config")
app.command("train")(train_cmd.train)
app.command("predict")(train_cmd.predict)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("demo")(demo_cmd.demo)
app.command("memory")(memory_cmd.memory)
app.command("serve")(serve_cmd.serve)
app.command("report")(report_cmd.report)
app.command("doctor")(doctor_cmd.doctor)
app.command("export")(export_cmd.export)
flags_take_no_value(app)  # `--json`, not `--json <bool>`, in every help page


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
    """Run the command line; returns the exit code (the console script passes it to ``sys.exit``).

    Usage errors are reported by typer itself (exit 2); vixml's own errors become one clear message and exit 1.
    """
    try:
        app(args=argv, prog_name="vixml")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except TrainingInterrupted as exc:
        typer.echo(str(exc), err=True)
        return exc.exit_code
    except VixmlError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
