"""Every help page shows flags as flags (`--json`, never `--json <bool>`) and still lists every option."""

from __future__ import annotations

import os
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from vixml.cli.main import app


def _command_paths(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_no_help_page_gives_a_flag_a_value_type():
    root = typer.main.get_command(app)
    runner = CliRunner()
    pages = 0
    for path, command in _command_paths(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "160"}, terminal_width=160)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, f"vixml {' '.join(path)} --help:\n{result.output}"
        flags = [opt for p in command.params if getattr(p, "is_flag", False) for opt in p.opts if opt.startswith("--")]
        assert all(flag in result.output for flag in flags), (path, flags)
        pages += 1
    assert pages >= 12  # root, data x3, images x2, config show, train, predict, evaluate, demo, memory


def test_train_help_through_the_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "vixml.cli.main", "train", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert out.returncode == 0, out.stderr
    line = next(row for row in out.stdout.splitlines() if "--json" in row)
    assert "<bool>" not in out.stdout and "Print the final metrics" in line
    assert "<path>" in out.stdout  # options that take a value keep their type
