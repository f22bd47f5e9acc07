"""A label overlay folder planted as a link out of the run is refused by name; nothing is written through it."""

from __future__ import annotations

import shutil

from vixml.cli.main import main
from vixml.run_folder import RunFolder


def test_a_linked_overlay_folder_is_refused_and_nothing_lands_outside(tmp_path, run_copy, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    overlay = RunFolder(run_copy).label_overlay
    shutil.rmtree(overlay, ignore_errors=True)  # a copy of a run that was edited before
    overlay.symlink_to(outside, target_is_directory=True)
    capsys.readouterr()
    code = main(["labels", "hide", str(run_copy), "0"])
    err = capsys.readouterr().err
    assert code != 0 and "symbolic link" in err and "Traceback" not in err, err
    assert list(outside.iterdir()) == []
