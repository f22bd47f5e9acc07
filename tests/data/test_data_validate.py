"""validate_dataset and load_dataset on a corrupted copy: every planted defect listed with file and line."""

from __future__ import annotations

import numpy as np
import pytest

import support_data
from vixml.data import load_dataset, validate_dataset
from vixml.data.image_maps import ImageMap, write_image_map
from vixml.errors import DataError


@pytest.fixture
def clean(tmp_path):
    return support_data.make_dataset(tmp_path / "ds", with_images=True)


def _plant_defects(ds):
    """Plant one defect of each kind; returns what validate must report as (file name, line or None, needle)."""
    lines = (ds / "trn_X_Y.txt").read_text().splitlines()
    lines[5] = lines[5] + " bad-token"  # line 6 of the file
    lines[9] = lines[9] + " 25:1"  # line 10: label id 25 >= 20
    (ds / "trn_X_Y.txt").write_text("\n".join(lines) + "\n")
    tst = (ds / "tst.raw.txt").read_text().splitlines()
    (ds / "tst.raw.txt").write_text("\n".join(tst + ["an extra test text"]) + "\n")  # 13 texts vs 12 rows
    emb_path = ds / "lbl_embs_imgs_2_8_synthetic.npy"
    emb = np.load(emb_path)
    emb[4, 2] = np.nan
    np.save(emb_path, emb)
    map_path = ds / "test_imgs_384_2_map.npz"
    with np.load(map_path) as archive:
        indptr, indices = archive["indptr"], archive["indices"].copy()
    indices[0] = 10_000
    write_image_map(map_path, ImageMap(indptr, indices))
    (ds / "filter_labels_test.txt").write_text("0 1\n1 2\n50 3\n")  # line 3: row 50 of 12
    return [
        ("trn_X_Y.txt", 6, "bad token 'bad-token'"),
        ("trn_X_Y.txt", 10, "label id 25 out of range"),
        ("tst_X_Y.txt", None, "12 rows but tst.raw.txt has 13 lines"),
        ("lbl_embs_imgs_2_8_synthetic.npy", None, "1 of 19 embedding rows hold NaN or inf values (row(s) 4)"),
        ("test_imgs_384_2_map.npz", None, "out of range"),
        ("filter_labels_test.txt", 3, "row 50 out of range [0, 12)"),
        ("tst.raw.txt", None, "differs from the manifest"),
        ("trn_X_Y.txt", None, "differs from the manifest"),
        ("filter_labels_test.txt", None, "differs from the manifest"),
        ("test_imgs_384_2_map.npz", None, "the map has 12 items but the split has 13"),  # follows from the extra text
    ]


def test_clean_dataset_validates(clean):
    assert validate_dataset(clean) == []


def test_every_planted_defect_is_listed(clean):
    expected = _plant_defects(clean)
    problems = validate_dataset(clean)
    for name, line, needle in expected:
        matches = [p for p in problems if p.file.endswith(name) and p.line == line and needle in p.message]
        assert matches, f"{name}:{line} {needle!r} not in {[str(p) for p in problems]}"
    assert len(problems) == len(expected)


def test_load_lists_every_shape_problem(clean):
    _plant_defects(clean)
    with pytest.raises(DataError) as err:
        load_dataset(clean)
    text = str(err.value)
    assert "bad token" in text and "label id 25" in text
    assert "tst.raw.txt has 13 lines" in text
    assert "out of range" in text  # the test map


def test_missing_files(tmp_path):
    ds = support_data.make_dataset(tmp_path / "ds", manifest=False)
    (ds / "lbl.raw.txt").unlink()
    (ds / "tst_X_Y.txt").unlink()
    problems = validate_dataset(ds)
    assert {(p.file.rsplit("/", 1)[-1], p.message) for p in problems} == {
        ("lbl.raw.txt", "required file missing"),
        ("tst_X_Y.txt", "required file missing"),
    }
    with pytest.raises(DataError) as err:
        load_dataset(ds)
    assert len(err.value.problems) == 2
    assert validate_dataset(tmp_path / "nowhere")[0].message == "dataset folder not found"


def test_text_encoding_and_id_line_problems(tmp_path):
    ds = support_data.make_dataset(tmp_path / "ds", latin1=True, manifest=False)
    problems = validate_dataset(ds)  # latin-1 only when asked for (or a known public folder)
    assert {(p.file.rsplit("/", 1)[-1], p.line, p.field) for p in problems} == {
        ("trn.raw.txt", 1, "encoding"),
        ("tst.raw.txt", 1, "encoding"),
        ("lbl.raw.txt", 1, "encoding"),
    }
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_dataset(ds)
    assert validate_dataset(ds, encoding="latin-1") == []
    assert load_dataset(ds, encoding="latin-1").trn_texts[0].endswith("café")
    public = support_data.make_dataset(tmp_path / "LF-AmazonTitles-131K", latin1=True, manifest=False)
    assert validate_dataset(public) == []
    assert load_dataset(public).trn_texts[0].endswith("café")
    ds = support_data.make_dataset(tmp_path / "ds2", manifest=False)
    (ds / "lbl.raw.txt").write_bytes(b"".join(f"L{j}->label {j}\n".encode() for j in range(19)) + b"no arrow here\n")
    problems = validate_dataset(ds)
    assert [(p.line, "without '->'" in p.message) for p in problems] == [(20, True)]
    (ds / "trn.raw.txt").write_bytes(b"binary\x00\n" * 40)
    assert any("NUL" in p.message and p.line == 1 for p in validate_dataset(ds))


def test_unconverted_pickled_map_and_label_count(tmp_path):
    ds = support_data.make_dataset(tmp_path / "ds", with_images=True, pickled_maps=True, manifest=False)
    problems = validate_dataset(ds)
    assert len(problems) == 3 and all("--trust-pickle" in p.message for p in problems)
    with pytest.raises(DataError, match="trust-pickle"):
        load_dataset(ds)
    assert load_dataset(ds, images=False).images is None
    (ds / "lbl.raw.txt").write_text("".join(f"label {j}\n" for j in range(21)))
    messages = [p.message for p in validate_dataset(ds)]
    assert "20 label columns but lbl.raw.txt has 21 lines" in messages


def test_id_and_image_reference_files(tmp_path):
    ds = support_data.make_dataset(tmp_path / "ds", manifest=False)
    (ds / "trn_ids.txt").write_text("a\nb\n")
    (ds / "lbl.images.jsonl").write_text('["x.jpg"]\n' * 19 + "not json\n")
    messages = {(p.file.rsplit("/", 1)[-1], p.line, p.message) for p in validate_dataset(ds)}
    assert ("trn_ids.txt", None, "2 lines but the split has 40 items") in messages
    assert ("lbl.images.jsonl", 20, "expected a JSON list of image references (strings)") in messages


def test_loaded_dataset_fields(tmp_path):
    ds = load_dataset(support_data.make_dataset(tmp_path / "ds", with_images=True), num_images=1)
    assert (ds.n_train, ds.n_test, ds.n_labels) == (40, 12, 20)
    assert ds.trn_Y.shape == (40, 20) and ds.tst_Y.shape == (12, 20)
    assert ds.filter_tst.shape == (4, 2) and ds.filter_trn.shape == (0, 2)
    assert ds.images["lbl"].num_images == 1
    emb, mask = ds.images["trn"].gather(np.arange(40))
    assert emb.shape == (40, 1, 8) and mask.sum() == (np.arange(40) % 3 > 0).sum()
    assert len(ds.fingerprint) == 64
    assert load_dataset(ds.path, images=False).images is None
