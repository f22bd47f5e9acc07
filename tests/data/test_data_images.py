"""Image maps (pickle conversion only on trust), ImageBank.gather, discovery of the released file names."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vixml.data import ImageBank, ImageMap, convert_image_map, discover_image_files, read_image_map
from vixml.data.image_maps import image_map_from_entries, write_image_map
from vixml.data.images import embedding_problems
from vixml.errors import DataError


def _released_map(path, entries):
    arr = np.empty(len(entries), dtype=object)
    for i, e in enumerate(entries):
        arr[i] = e
    np.save(path, arr, allow_pickle=True)


def test_pickled_map_needs_trust(tmp_path):
    src = tmp_path / "train_imgs_384_3_map.npy"
    _released_map(src, [[4, 1], -1, [0]])
    with pytest.raises(DataError, match="--trust-pickle"):
        convert_image_map(src, tmp_path / "train_imgs_384_3_map.npz", trust_pickle=False)
    assert not (tmp_path / "train_imgs_384_3_map.npz").exists()
    with pytest.raises(DataError, match="pickles and are not read directly"):
        read_image_map(src)


def test_conversion_with_trust_round_trips(tmp_path):
    src, dst = tmp_path / "m.npy", tmp_path / "m.npz"
    _released_map(src, [[4, 1, 3], -1, [0], np.array([2, 5]), [], 6, None, [7, -1]])
    image_map = convert_image_map(src, dst, trust_pickle=True)
    assert image_map.indptr.tolist() == [0, 3, 3, 4, 6, 6, 7, 7, 8]
    assert image_map.indices.tolist() == [4, 1, 3, 0, 2, 5, 6, 7]
    back = read_image_map(dst)
    assert back.indptr.dtype == np.int64 and back.indices.dtype == np.int64
    np.testing.assert_array_equal(back.indptr, image_map.indptr)
    np.testing.assert_array_equal(back.indices, image_map.indices)
    with np.load(dst, allow_pickle=False) as archive:  # readable without pickle
        assert sorted(archive.files) == ["indices", "indptr"]


def test_plain_integer_maps_need_no_trust(tmp_path):
    np.save(tmp_path / "one.npy", np.array([3, -1, 0]))
    one = convert_image_map(tmp_path / "one.npy", tmp_path / "one.npz", trust_pickle=False)
    assert one.indptr.tolist() == [0, 1, 1, 2] and one.indices.tolist() == [3, 0]
    np.save(tmp_path / "padded.npy", np.array([[1, 2], [-1, -1], [5, -1]]))
    padded = convert_image_map(tmp_path / "padded.npy", tmp_path / "padded.npz", trust_pickle=False)
    assert padded.indptr.tolist() == [0, 2, 2, 3] and padded.indices.tolist() == [1, 2, 5]


def test_bad_entries_are_named_by_item():
    with pytest.raises(DataError) as err:
        image_map_from_entries(np.array([[1], "x", [2.5], [-3], True], dtype=object))
    fields = [p.field for p in err.value.problems]
    assert fields == ["item 1", "item 4", "item 2"]  # the type check first, then values in the lists
    with pytest.raises(DataError, match="negative embedding row -3"):
        image_map_from_entries(np.array([[1], [-3]], dtype=object))


def test_map_problems():
    image_map = ImageMap(np.array([0, 2, 3]), np.array([0, 9, 1]))
    problems = image_map.problems("m.npz", n_embeddings=5, n_items=3)
    text = " | ".join(p.message for p in problems)
    assert "1 embedding row(s) out of range [0, 5); the first is 9 for item 0" in text
    assert "the map has 2 items but the split has 3" in text
    broken = ImageMap(np.array([0, 3, 2]), np.array([0, 1]))
    assert "never decrease" in broken.problems("m.npz")[0].message


def _bank(tmp_path, entries, n_emb=6, dim=3, num_images=2):
    emb = (np.arange(n_emb * dim, dtype=np.float32).reshape(n_emb, dim) + 1) * 10
    np.save(tmp_path / "e.npy", emb)
    write_image_map(tmp_path / "m.npz", image_map_from_entries(np.array(entries + [None], dtype=object)[:-1]))
    return ImageBank(tmp_path / "e.npy", tmp_path / "m.npz", num_images), emb


def test_gather_matches_a_hand_built_expectation(tmp_path):
    bank, emb = _bank(tmp_path, [[5, 0, 3], -1, [2], [1, 4]])
    out, mask = bank.gather([0, 1, 2, 3, 0])
    assert out.shape == (5, 2, 3) and out.dtype == np.float32 and mask.dtype == bool
    expected = np.zeros((5, 2, 3), dtype=np.float32)
    expected[0] = emb[[5, 0]]  # first N=2 of [5, 0, 3], in map order
    expected[2, 0] = emb[2]
    expected[3] = emb[[1, 4]]
    expected[4] = emb[[5, 0]]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(mask, [[1, 1], [0, 0], [1, 0], [1, 1], [1, 1]])
    np.testing.assert_array_equal(bank.counts(), [2, 0, 1, 2])
    empty, empty_mask = bank.gather(np.array([], dtype=np.int64))
    assert empty.shape == (0, 2, 3) and empty_mask.shape == (0, 2)
    with pytest.raises(IndexError):
        bank.gather([4])


def test_bank_is_memory_mapped_and_pickles_light(tmp_path):
    bank, _ = _bank(tmp_path, [[0], [1]])
    assert isinstance(bank.embeddings, np.memmap)
    clone = pickle.loads(pickle.dumps(bank))
    assert clone._emb is None
    np.testing.assert_array_equal(clone.gather([1])[0], bank.gather([1])[0])


def test_gathering_a_non_finite_embedding_row_is_refused(tmp_path):
    bank, emb = _bank(tmp_path, [[0], [1, 2], -1])
    emb[2, 0] = np.nan
    np.save(bank.embeddings_path, emb)
    bank = ImageBank(bank.embeddings_path, bank.map_path, bank.num_images)
    assert bank.gather([0, 2])[1].sum() == 1  # rows without NaN gather as before
    with pytest.raises(DataError, match=r"embedding row\(s\) 2 hold NaN or inf values"):
        bank.gather([1])


def test_bank_rejects_out_of_range_map(tmp_path):
    with pytest.raises(DataError, match="out of range"):
        _bank(tmp_path, [[0], [6]])


def test_embedding_scan_reports_count_and_first_rows(tmp_path, monkeypatch):
    from vixml import finite

    monkeypatch.setattr(finite, "_BLOCK_BYTES", 24)  # two rows per chunk: the scan spans chunks
    emb = np.ones((7, 3), dtype=np.float32)
    emb[3, 1] = np.nan
    emb[6, 0] = np.inf
    np.save(tmp_path / "e.npy", emb)
    (problem,) = embedding_problems(tmp_path / "e.npy")
    assert "2 of 7 embedding rows hold NaN or inf values (row(s) 3, 6)" in problem.message
    np.save(tmp_path / "ok.npy", np.ones((4, 2), dtype=np.float32))
    assert embedding_problems(tmp_path / "ok.npy") == []
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    assert "not a plain numpy" in embedding_problems(tmp_path / "obj.npy")[0].message


def test_discover_released_names(tmp_path):
    for name in (
        "trn_embs_imgs_3_1152_siglip2.npy",
        "tst_embs_imgs_3_1152_siglip2.npy",
        "lbl_embs_imgs_1_1152_siglip2.npy",
        "train_imgs_384_3_map.npy",
        "train_imgs_384_3_map.npz",
        "test_imgs_384_3_map.npy",
        "labels_imgs_384_5_map.npy",
        "labels_imgs_384_1_map.npz",
        "train_imgs_384_3.bin",
        "unrelated.npy",
    ):
        (tmp_path / name).write_bytes(b"")
    found = discover_image_files(tmp_path)
    assert set(found) == {"trn", "tst", "lbl"}
    trn, tst, lbl = found["trn"], found["tst"], found["lbl"]
    assert (trn.num_images, trn.dim, trn.model, trn.image_size) == (3, 1152, "siglip2", 384)
    assert trn.map_npz.name == "train_imgs_384_3_map.npz" and trn.map_npy.name == "train_imgs_384_3_map.npy"
    assert trn.bank.name == "train_imgs_384_3.bin"
    assert tst.map_npz is None and tst.map_npy.name == "test_imgs_384_3_map.npy"
    assert lbl.map_npz.name == "labels_imgs_384_1_map.npz"  # paired by N with the embedding file
    assert lbl.map_npy is None
    clip = discover_image_files(tmp_path, model="clip")
    assert clip["trn"].embeddings is None and clip["trn"].map_npz is not None
