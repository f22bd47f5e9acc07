"""`vixml images embed` bad inputs through the command line: each is exit 1 naming what is wrong, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PIL")

import support_vision as sv  # noqa: E402
from vixml.locking import WriteLock  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def vixml(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True, env=env)


def test_a_model_path_that_does_not_exist_is_refused_before_anything_is_written(tmp_path):
    data = tmp_path / "data"
    sv.tiny_image_dataset(data)
    before = sorted(p.name for p in data.iterdir())
    for model in (str(tmp_path / "no" / "such" / "model"), "./models/siglip-missing"):
        out = vixml("images", "embed", str(data), "--model", model, "--split", "lbl")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert f"--model {model!r}: no such folder" in out.stderr
    (tmp_path / "weights.bin").write_bytes(b"x")
    out = vixml("images", "embed", str(data), "--model", str(tmp_path / "weights.bin"))
    assert out.returncode == 1 and "is a file: give the folder" in out.stderr
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_second_embed_of_the_same_folder_is_refused_naming_the_holder(tmp_path):
    data = tmp_path / "data"
    sv.tiny_image_dataset(data)
    with WriteLock(data, "vixml images embed"):
        out = vixml("images", "embed", str(data), "--model", str(tmp_path), "--split", "lbl")
    assert out.returncode == 1
    assert f"is being written by another process (vixml images embed, pid {os.getpid()} on" in out.stderr
