"""Bad inputs to `vixml data ...` and the dataset loaders: each one is exit 1 with the file and what was expected.

One test per defect of issue 12 (data side); the messages checked here are the ones docs/bad-inputs.md quotes.
"""

from __future__ import annotations

import errno
import shutil

from support_data import make_dataset
from vixml.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``vixml ARGS`` in this process (so that a test can monkeypatch the library); (exit code, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_disk_full_names_the_path_and_the_space_needed(tmp_path, monkeypatch, capsys):
    src = make_dataset(tmp_path / "src", n_train=8, n_test=4, n_labels=5, manifest=False)

    def full_disk(source, target):
        with open(target, "wb") as fh:
            fh.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    code, _, err = run(capsys, "data", "prepare", str(src), str(tmp_path / "out"))
    assert code == 1
    assert "no space left on device while writing" in err and "trn.raw.txt" in err
    size = (src / "trn.raw.txt").stat().st_size
    assert f"{size} bytes were needed" in err and "free there" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written is left where later commands look
