"""The run folder type: its model swap never leaves a moment without a complete model."""

from __future__ import annotations

import pytest

from vixml.errors import DataError
from vixml.run_folder import MODEL_COMPLETE, RunFolder


def _writer(tag: str):
    def save(folder):
        folder.mkdir(parents=True)
        (folder / "weights").write_text(tag)
        (folder / MODEL_COMPLETE).write_text("{}")

    return save


def test_replace_model_swaps_in_the_new_model(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    run.replace_model(_writer("two"))
    assert (run.model_dir() / "weights").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_swap_interrupted_between_its_renames_is_read_and_recovered(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    run.model.rename(tmp_path / "model.old")  # killed after the first rename
    assert (run.model_dir() / "weights").read_text() == "one"  # a reader still finds a complete model
    run.clean_stale()
    assert (run.model / "weights").read_text() == "one"


def test_an_incomplete_new_model_is_refused(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    with pytest.raises(RuntimeError, match="incomplete"):
        run.replace_model(lambda folder: folder.mkdir())
    assert (run.model_dir() / "weights").read_text() == "one"


def test_require_finished_lists_every_missing_part(tmp_path):
    with pytest.raises(DataError) as err:
        RunFolder(tmp_path).require_finished()
    text = str(err.value)
    assert "config.yaml" in text and "model" in text and "label_embeddings.npy" in text
    with pytest.raises(DataError, match="not a folder"):
        RunFolder(tmp_path / "nope").require_finished()
