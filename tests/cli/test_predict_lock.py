"""`vixml predict --out FILE` takes a write lock on FILE: a second writer is refused at once, naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys

from vixml.locking import WriteLock


def test_a_second_writer_of_the_prediction_file_is_refused(tmp_path):
    out = tmp_path / "pred.npz"
    with WriteLock(out, "vixml predict"):
        done = subprocess.run(
            [sys.executable, "-m", "vixml.cli.main", "predict", str(tmp_path / "run"), "--data", str(tmp_path),
             "--out", str(out)],
            capture_output=True, text=True,
        )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{out} is being written by another process (vixml predict, pid {os.getpid()} on" in done.stderr
    assert not out.exists()
