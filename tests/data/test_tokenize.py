"""The tokenisation cache: build, reuse, staleness, atomicity, keys and batch trimming."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vixml.data.tokenize as tokenize_module
from support_models import SAMPLE_TEXTS, train_wordpiece_tokenizer
from vixml.data.tokenize import TokenArrays, TokenCache, cache_key

TEXTS = list(SAMPLE_TEXTS) + ["", "a dog"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece_tokenizer()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "trn.raw.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def calls(monkeypatch):
    """Counts the tokenizer batch calls the cache makes."""
    seen = []
    original = tokenize_module._encode_chunk

    def counting(tokenizer, texts, max_length):
        seen.append(len(texts))
        return original(tokenizer, texts, max_length)

    monkeypatch.setattr(tokenize_module, "_encode_chunk", counting)
    return seen


def _cache(tmp_path, **kwargs):
    return TokenCache.for_dataset(tmp_path, chunk_size=5, progress=False, **kwargs)


def test_build_matches_the_tokenizer(tmp_path, source, tokenizer, calls):
    arrays = _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    assert calls == [5, 5, 4]  # chunked batch calls
    assert isinstance(arrays.input_ids, np.memmap) and arrays.input_ids.dtype == np.int32
    assert arrays.input_ids.shape == (len(TEXTS), 6) and len(arrays) == len(TEXTS)
    for row, text in enumerate(TEXTS):
        expected = tokenizer(text, max_length=6, truncation=True)["input_ids"]
        assert arrays.lengths[row] == len(expected)
        assert arrays.input_ids[row].tolist() == expected + [tokenizer.pad_token_id] * (6 - len(expected))
    key_folder = tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6)
    assert sorted(p.name for p in key_folder.iterdir()) == ["key.json", "trn.ids.npy", "trn.json", "trn.lengths.npy"]


def test_second_call_reuses_the_cache(tmp_path, source, tokenizer, calls):
    first = _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    stamp = os.stat(tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6) / "trn.ids.npy").st_mtime_ns
    calls.clear()
    second = _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    assert calls == []
    assert os.stat(tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6) / "trn.ids.npy").st_mtime_ns == stamp
    assert np.array_equal(first.input_ids, second.input_ids) and np.array_equal(first.lengths, second.lengths)


def test_changed_source_rebuilds(tmp_path, source, tokenizer, calls):
    cache = _cache(tmp_path)
    cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    changed = ["quantum " + t for t in TEXTS]
    source.write_text("\n".join(changed) + "\n", encoding="utf-8")
    calls.clear()
    arrays = cache.get(changed, "trn", source, tokenizer, max_length=6)
    assert calls
    assert arrays.input_ids[0].tolist() == tokenizer(changed[0], max_length=6, truncation=True)["input_ids"]


def test_touched_but_identical_source_is_reused(tmp_path, source, tokenizer, calls):
    cache = _cache(tmp_path)
    cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls.clear()
    cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    assert calls == []


def test_same_size_edit_is_detected(tmp_path, source, tokenizer, calls):
    cache = _cache(tmp_path)
    cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    data = source.read_bytes()
    source.write_bytes(data.replace(b"dog", b"cat"))  # same size; the mtime moves on (forced, for coarse clocks)
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls.clear()
    cache.get([t.replace("dog", "cat") for t in TEXTS], "trn", source, tokenizer, max_length=6)
    assert calls


def test_in_memory_texts_are_hashed(tmp_path, tokenizer, calls):
    cache = _cache(tmp_path)
    cache.get(TEXTS, "lbl", None, tokenizer, max_length=6)
    calls.clear()
    cache.get(TEXTS, "lbl", None, tokenizer, max_length=6)
    assert calls == []
    cache.get(TEXTS[:-1] + ["a cat"], "lbl", None, tokenizer, max_length=6)
    assert calls


def test_interrupted_build_leaves_no_cache(tmp_path, source, tokenizer, monkeypatch):
    original = tokenize_module._encode_chunk
    done = []

    def failing(tokenizer, texts, max_length):
        if done:
            raise KeyboardInterrupt("killed mid-way")
        done.append(1)
        return original(tokenizer, texts, max_length)

    monkeypatch.setattr(tokenize_module, "_encode_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    folder = tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6)
    assert [p.name for p in folder.iterdir() if p.name != "key.json"] == []
    monkeypatch.setattr(tokenize_module, "_encode_chunk", original)
    arrays = _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    assert arrays.lengths.min() > 0


def test_interrupted_rebuild_does_not_vouch_for_old_arrays(tmp_path, source, tokenizer, monkeypatch, calls):
    cache = _cache(tmp_path)
    cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    source.write_text("changed\n" * len(TEXTS), encoding="utf-8")
    monkeypatch.setattr(tokenize_module, "_encode_chunk", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        cache.get(["changed"] * len(TEXTS), "trn", source, tokenizer, max_length=6)
    assert not (tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6) / "trn.json").exists()


def test_key_depends_on_tokenizer_length_and_side(tokenizer):
    base = cache_key(tokenizer, 32)
    assert cache_key(tokenizer, 32) == base
    assert cache_key(tokenizer, 16) != base
    other = train_wordpiece_tokenizer(list(SAMPLE_TEXTS) + ["completely different vocabulary words"], vocab_size=320)
    assert cache_key(other, 32) != base
    tokenizer.padding_side = "left"
    try:
        assert cache_key(tokenizer, 32) != base
    finally:
        tokenizer.padding_side = "right"
    tokenizer(["a dog"], max_length=3, truncation=True, padding="max_length")  # mutates the backend's state
    assert cache_key(tokenizer, 32) == base


def test_batch_trims_to_longest_row_right_padding():
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0], [4, 0, 0, 0, 0]], dtype=np.int32)
    arrays = TokenArrays(ids, np.array([3, 2, 1], dtype=np.int32), pad_id=0, padding_side="right")
    input_ids, mask = arrays.batch([2, 1])
    assert input_ids.tolist() == [[4, 0], [8, 9]] and mask.tolist() == [[1, 0], [1, 1]]
    assert str(input_ids.dtype) == "torch.int64"
    input_ids, mask = arrays.batch(np.array([0, 2]))
    assert input_ids.shape == (2, 3) and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_batch_trims_to_longest_row_left_padding():
    ids = np.array([[0, 0, 5, 6, 7], [0, 0, 0, 8, 9], [0, 0, 0, 0, 4]], dtype=np.int32)
    arrays = TokenArrays(ids, np.array([3, 2, 1], dtype=np.int32), pad_id=0, padding_side="left")
    input_ids, mask = arrays.batch([2, 1])
    assert input_ids.tolist() == [[0, 4], [8, 9]] and mask.tolist() == [[0, 1], [1, 1]]


def test_left_padding_tokenizer_round_trip(tmp_path, source, tokenizer):
    tokenizer.padding_side = "left"
    try:
        arrays = _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=8)
        assert arrays.padding_side == "left"
        input_ids, mask = arrays.batch([0, 1])
        expected = tokenizer(TEXTS[:2], max_length=8, truncation=True, padding="longest", return_tensors="np")
        assert input_ids.tolist() == expected["input_ids"].tolist()
        assert mask.tolist() == expected["attention_mask"].tolist()
    finally:
        tokenizer.padding_side = "right"


def test_empty_split(tmp_path, tokenizer):
    arrays = _cache(tmp_path).get([], "tst", None, tokenizer, max_length=4)
    assert arrays.input_ids.shape == (0, 4) and len(arrays) == 0
    assert len(_cache(tmp_path).get([], "tst", None, tokenizer, max_length=4)) == 0


def test_meta_records_the_source(tmp_path, source, tokenizer):
    _cache(tmp_path).get(TEXTS, "trn", source, tokenizer, max_length=6)
    meta = json.loads((tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6) / "trn.json").read_text())
    assert meta["n"] == len(TEXTS) and meta["source"]["size"] == source.stat().st_size


def test_importing_the_module_stays_light():
    code = "import sys, vixml.data.tokenize; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("damage", ["truncated ids", "garbage lengths", "meta without source"])
def test_unreadable_cache_is_rebuilt_with_a_log_line(tmp_path, source, tokenizer, calls, caplog, damage):
    cache = _cache(tmp_path)
    first = cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    expected = np.array(first.input_ids)
    folder = tmp_path / ".cache" / "tokens" / cache_key(tokenizer, 6)
    del first
    if damage == "truncated ids":
        raw = (folder / "trn.ids.npy").read_bytes()
        (folder / "trn.ids.npy").write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage lengths":
        (folder / "trn.lengths.npy").write_bytes(b"not numpy at all")
    else:
        meta = json.loads((folder / "trn.json").read_text())
        meta["source"] = "?"
        (folder / "trn.json").write_text(json.dumps(meta))
    calls.clear()
    with caplog.at_level("WARNING", logger="vixml.data.tokenize"):
        again = cache.get(TEXTS, "trn", source, tokenizer, max_length=6)
    assert calls  # tokenised again instead of a traceback
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(np.array(again.input_ids), expected)
