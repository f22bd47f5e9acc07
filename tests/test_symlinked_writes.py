"""Writes never follow a symbolic link out of the folder vixml owns: a planted link is refused by name and
whatever it points at is left as it was (the lock, checkpoints, the label overlay, the token cache)."""

from __future__ import annotations

import numpy as np
import pytest

from vixml.atomic import refuse_links
from vixml.errors import StorageError
from vixml.locking import WriteLock
from vixml.training.checkpoint import save_checkpoint


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me\n")
    (folder / "ckpt-e0000-s000000001").mkdir()
    (folder / "ckpt-e0000-s000000001" / "state.pt").write_text("not ours\n")
    return folder


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".vixml.lock").symlink_to(outside / "precious.txt")
    with pytest.raises(StorageError, match="symbolic link"):
        WriteLock(run).acquire()
    assert (outside / "precious.txt").read_text() == "keep me\n"


def test_a_linked_checkpoints_folder_is_refused_before_anything_is_deleted(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="checkpoints is a symbolic link"):
        save_checkpoint(run / "checkpoints", 1, {"x": 1}, np.zeros((2, 2), np.float32), step=5)
    assert (outside / "ckpt-e0000-s000000001" / "state.pt").read_text() == "not ours\n"
    assert sorted(p.name for p in outside.iterdir()) == ["ckpt-e0000-s000000001", "precious.txt"]


def test_a_linked_token_cache_is_refused(tmp_path, outside, tiny_bert):
    from transformers import AutoTokenizer

    from vixml.data.tokenize import TokenCache

    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / ".cache").symlink_to(outside, target_is_directory=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    with pytest.raises(StorageError, match=r"\.cache is a symbolic link"):
        TokenCache.for_dataset(dataset, progress=False).get(["a b", "c"], "trn", None, tokenizer, 8)
    assert sorted(p.name for p in outside.iterdir()) == ["ckpt-e0000-s000000001", "precious.txt"]


def test_the_root_itself_may_be_a_link(tmp_path, outside):
    link = tmp_path / "runs"
    link.symlink_to(outside, target_is_directory=True)
    assert refuse_links(link / "run" / "checkpoints", link) == link / "run" / "checkpoints"
    with WriteLock(link / "run"):  # the user chose the linked folder: that is fine
        pass
