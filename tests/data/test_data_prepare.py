"""prepare_dataset from XC-repository raw folders, catalogues and dataset folders; atomic, manifest last."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

import support_data
from vixml.data import detect_source, load_dataset, prepare_dataset, read_manifest, validate_dataset
from vixml.data import prepare as prepare_module
from vixml.errors import DataError


@pytest.mark.parametrize(
    ("name", "text_mode", "expected_mode"),
    [
        ("LF-ToyTitles-1K", "auto", "title"),
        ("LF-Toy-1K", "auto", "title+content"),
        ("LF-ToyTitles-1K", "title+content", "title+content"),
    ],
)
def test_xc_repo_folder(tmp_path, name, text_mode, expected_mode):
    src, expected = support_data.make_xc_raw(tmp_path / name)
    (src / "filter_labels_test.txt").write_text("0 3\n2 1\n")
    out = prepare_dataset(src, tmp_path / "out", text_mode=text_mode)
    ds = load_dataset(out)
    assert (ds.n_train, ds.n_test, ds.n_labels) == (30, 10, 15)
    assert list(ds.trn_texts) == expected["trn"][expected_mode]
    assert list(ds.tst_texts) == expected["tst"][expected_mode]
    assert list(ds.lbl_texts) == expected["lbl"][expected_mode]
    np.testing.assert_array_equal(ds.trn_Y.toarray(), expected["trn_Y"].toarray())  # values from target_rel
    np.testing.assert_array_equal(ds.tst_Y.toarray(), expected["tst_Y"].toarray())
    np.testing.assert_array_equal(ds.filter_tst, [[0, 3], [2, 1]])
    assert not (out / "filter_labels_train.txt").exists()
    assert list(ds.ids("trn"))[:2] == ["trn0", "trn1"] and ds.ids("lbl")[3] == "L3"
    manifest = read_manifest(out)
    assert manifest["text_mode"] == expected_mode
    assert manifest["counts"] == {"n_train": 30, "n_test": 10, "n_labels": 15}
    assert manifest["source"]["kind"] == "xc-repo"
    assert ds.fingerprint == manifest["fingerprint"]


def test_xc_repo_without_relevance_uses_ones(tmp_path):
    src, expected = support_data.make_xc_raw(tmp_path / "LF-X", relevance=False)
    ds = load_dataset(prepare_dataset(src, tmp_path / "out"))
    assert set(ds.trn_Y.data.tolist()) == {1.0}
    assert (ds.trn_Y != expected["trn_Y"]).nnz == 0


def test_xc_repo_defects_are_listed_and_leave_no_manifest(tmp_path):
    src, _ = support_data.make_xc_raw(tmp_path / "LF-Bad", n_labels=5)
    lines = gzip.open(src / "trn.json.gz", "rt").read().splitlines()
    lines[1] = "{not json"
    record = json.loads(lines[3])
    record["target_ind"] = [1, 99, 1]
    record["target_rel"] = [1.0, 1.0]
    lines[3] = json.dumps(record)
    record = json.loads(lines[4])
    del record["title"]
    lines[4] = json.dumps(record)
    with gzip.open(src / "trn.json.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        prepare_dataset(src, tmp_path / "out")
    found = {(p.line, p.field) for p in err.value.problems}
    assert found == {(2, None), (4, "target_rel"), (4, "target_ind"), (5, "title")}
    assert all(p.file.endswith("trn.json.gz") for p in err.value.problems)
    assert "label id 99 out of range [0, 5)" in str(err.value) and "duplicate label id 1" in str(err.value)
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_xc_repo_image_files_convert_only_on_trust(tmp_path):
    ds_dir = support_data.make_dataset(tmp_path / "imgs", with_images=True, pickled_maps=True, manifest=False)
    src, _ = support_data.make_xc_raw(tmp_path / "LF-Img", n_train=40, n_test=12, n_labels=20)
    for path in ds_dir.glob("*_embs_imgs_*.npy"):
        (src / path.name).write_bytes(path.read_bytes())
    for path in ds_dir.glob("*_map.npy"):
        (src / path.name).write_bytes(path.read_bytes())
    untrusted = prepare_dataset(src, tmp_path / "untrusted")
    assert load_dataset(untrusted).images is None
    assert len(read_manifest(untrusted)["skipped"]) == 3
    trusted = prepare_dataset(src, tmp_path / "trusted", trust_pickle=True)
    ds = load_dataset(trusted)
    assert set(ds.images) == {"trn", "tst", "lbl"}
    assert ds.images["trn"].n_items == 40 and ds.images["trn"].num_images == 2
    assert not list(trusted.glob("*_map.npy"))  # only the pickle-free maps were written
    reference = load_dataset(support_data.make_dataset(tmp_path / "ref", with_images=True, manifest=False))
    for split in ("trn", "tst", "lbl"):
        rows = np.arange(reference.images[split].n_items)
        np.testing.assert_array_equal(ds.images[split].gather(rows)[0], reference.images[split].gather(rows)[0])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("split_column", [True, False])
def test_catalogue(tmp_path, fmt, split_column):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    src, expected = support_data.make_catalogue(tmp_path / "cat", fmt=fmt, split_column=split_column)
    assert detect_source(src) == "catalogue"
    ds = load_dataset(prepare_dataset(src, tmp_path / "out"))
    lbl_ids, trn_ids, tst_ids = list(ds.ids("lbl")), list(ds.ids("trn")), list(ds.ids("tst"))
    assert lbl_ids == expected["lbl_ids"]  # label-file order
    assert trn_ids == expected["trn_ids"] and tst_ids == expected["tst_ids"]
    assert list(ds.lbl_texts) == expected["lbl_texts"]
    assert list(ds.trn_texts) == [expected["query_texts"][q] for q in trn_ids]
    for split, y, ids in (("trn", ds.trn_Y, trn_ids), ("tst", ds.tst_Y, tst_ids)):
        rows, cols = y.nonzero()
        assert {(ids[r], lbl_ids[c]) for r, c in zip(rows, cols, strict=True)} == expected[f"{split}_pairs"]
    refs = (ds.path / "lbl.images.jsonl").read_text().splitlines()
    assert json.loads(refs[0]) == [f"http://img.example/{lbl_ids[0]}.jpg"]
    assert validate_dataset(ds.path) == []


def test_catalogue_unknown_ids_and_conflicts_name_file_and_line(tmp_path):
    src, _ = support_data.make_catalogue(tmp_path / "cat", fmt="csv")
    pairs = (src / "pairs.csv").read_text().splitlines()
    pairs.insert(3, "q1,sku-404,trn")  # line 4: unknown label
    pairs.insert(5, "nobody,sku-1,trn")  # line 6: unknown query
    pairs.append("q0,sku-1,tst")  # q0 now has train and test pairs
    pairs.append("q2,sku-1,dev")  # unknown split
    (src / "pairs.csv").write_text("\n".join(pairs) + "\n")
    with pytest.raises(DataError) as err:
        prepare_dataset(src, tmp_path / "out")
    by_line = {(p.file.rsplit("/", 1)[-1], p.line, p.field) for p in err.value.problems}
    n = len(pairs)
    assert ("pairs.csv", 4, "label_id") in by_line
    assert ("pairs.csv", 6, "query_id") in by_line
    assert ("pairs.csv", n, "split") in by_line
    assert ("queries.csv", 2, "split") in by_line  # q0 is on line 2 of queries.csv
    assert not (tmp_path / "out" / "dataset.json").exists()
    assert not list((tmp_path / "out").glob(".queries*"))  # temporary files removed


def test_catalogue_duplicate_and_missing_ids(tmp_path):
    src, _ = support_data.make_catalogue(tmp_path / "cat", fmt="jsonl")
    with open(src / "labels.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "sku-1", "text": "again"}) + "\n")
        fh.write(json.dumps({"text": "no id"}) + "\n")
        fh.write("[1, 2]\n")
    with pytest.raises(DataError) as err:
        prepare_dataset(src, tmp_path / "out")
    messages = {(p.line, p.message.split(" (")[0]) for p in err.value.problems}
    assert (7, "duplicate id 'sku-1'") in messages
    assert any(line == 8 and "missing id" in m for line, m in messages)
    assert (9, "expected a JSON object per line") in messages


def test_train_only_catalogue(tmp_path):
    src = tmp_path / "cat"
    src.mkdir()
    support_data.write_table(src / "queries.csv", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    support_data.write_table(src / "labels.csv", [{"id": "L", "title": "t", "content": "c"}])
    support_data.write_table(src / "train_pairs.csv", [{"query_id": "a", "label_id": "L", "score": "0.5"}])
    ds = load_dataset(prepare_dataset(src, tmp_path / "out"))
    assert ds.tst_texts is None and ds.tst_Y is None and ds.n_test == 0
    assert ds.trn_Y.toarray().tolist() == [[0.5], [0.0]]  # b has no pair: an empty training row
    assert list(ds.lbl_texts) == ["t c"]


def test_dataset_folder_copy_and_in_place(tmp_path):
    src = support_data.make_dataset(tmp_path / "src", with_images=True, manifest=False)
    assert detect_source(src) == "dataset-folder"
    out = prepare_dataset(src, tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in src.iterdir()), "dataset.json"])
    assert load_dataset(out).fingerprint == load_dataset(src).fingerprint  # same data, same fingerprint
    prepare_dataset(src, src)  # in place: only the manifest
    assert read_manifest(src)["counts"]["n_train"] == 40
    with pytest.raises(DataError, match="already prepared"):
        prepare_dataset(src, src)


def test_invalid_dataset_folder_is_not_prepared(tmp_path):
    src = support_data.make_dataset(tmp_path / "src", manifest=False)
    (src / "tst.raw.txt").write_text("only one line\n")
    with pytest.raises(DataError, match="tst_X_Y.txt"):
        prepare_dataset(src, tmp_path / "out")
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_output_folder_rules(tmp_path):
    src, _ = support_data.make_xc_raw(tmp_path / "LF-A")
    out = prepare_dataset(src, tmp_path / "out")
    with pytest.raises(DataError, match="holds a prepared dataset"):
        prepare_dataset(src, out)
    (out / "notes.md").write_text("mine")
    prepare_dataset(src, out, overwrite=True)
    assert (out / "notes.md").read_text() == "mine"  # foreign files are left alone
    half = tmp_path / "half"
    half.mkdir()
    (half / "trn.raw.txt").write_text("x\n")
    with pytest.raises(DataError, match="unfinished prepare"):
        prepare_dataset(src, half)
    with pytest.raises(DataError, match="unrecognised source"):
        prepare_dataset(tmp_path / "out" / "..", tmp_path / "elsewhere")


def test_killed_prepare_does_not_look_complete(tmp_path, monkeypatch):
    src, _ = support_data.make_xc_raw(tmp_path / "LF-K")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "copy_image_files", killed)  # dies after texts and labels
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # built aside: nothing where later commands look
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LF-K"]  # the build folder and its lock are gone


def test_build_folder_of_a_killed_prepare_is_removed_by_the_next(tmp_path):
    src, _ = support_data.make_xc_raw(tmp_path / "LF-K")
    dead = tmp_path / ".out.preparing-0badc0de"  # what kill -9 leaves: a build folder whose lock is free
    dead.mkdir()
    (dead / "trn.raw.txt").write_text("half\n")
    prepare_dataset(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LF-K", "out"]


def test_interrupted_overwrite_is_refused_by_every_reader(tmp_path, monkeypatch):
    src, _ = support_data.make_xc_raw(tmp_path / "LF-K")
    out = prepare_dataset(src, tmp_path / "out")

    replace = os.replace

    def killed(source, target):
        if Path(target) == out / "lbl.raw.txt":  # dies while moving the new files in
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(prepare_module.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(src, out, overwrite=True)
    monkeypatch.undo()
    for check in (lambda: load_dataset(out), lambda: _raise(validate_dataset(out))):
        with pytest.raises(
            DataError, match="is replacing this folder, or was interrupted doing so: wait for it, or run it again"
        ):
            check()
    prepare_dataset(src, out, overwrite=True)  # the remedy the message gives
    assert load_dataset(out).n_train == 30


def _raise(problems):
    if problems:
        raise DataError(problems)


def test_link_mode_hard_links_large_files(tmp_path):
    src = support_data.make_dataset(tmp_path / "src", with_images=True, manifest=False)
    out = prepare_dataset(src, tmp_path / "linked", link=True)
    name = "trn_embs_imgs_2_8_synthetic.npy"
    assert (out / name).stat().st_ino == (src / name).stat().st_ino
    assert load_dataset(out).images["trn"].n_items == 40


def test_a_catalogue_image_cell_and_a_url_table_cell_read_alike(tmp_path):
    from vixml.vision.image_refs import refs_from_table

    src = tmp_path / "cat"
    src.mkdir()
    cells = ["img/a.jpg|img/b.jpg", '["img/c.jpg", "http://x.example/d.jpg"]', "data:image/png;base64,AA|AA", ""]
    queries = [{"id": f"q{i}", "text": f"query {i}", "image": cell} for i, cell in enumerate(cells)]
    support_data.write_table(src / "queries.csv", queries)
    support_data.write_table(src / "labels.csv", [{"id": "L", "text": "label"}])
    support_data.write_table(src / "train_pairs.csv", [{"query_id": q["id"], "label_id": "L"} for q in queries])
    out = prepare_dataset(src, tmp_path / "out")
    prepared = [json.loads(line) for line in (out / "trn.images.jsonl").read_text().splitlines()]
    table = refs_from_table(src / "queries.csv", url_column="image")
    assert prepared == [table[f"q{i}"] for i in range(len(cells))]
    assert prepared[0] == [str((src / "img" / "a.jpg").resolve()), str((src / "img" / "b.jpg").resolve())]
    assert prepared[1][1] == "http://x.example/d.jpg" and prepared[2] == ["data:image/png;base64,AA|AA"]
    assert prepared[3] == []
