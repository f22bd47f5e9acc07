"""Builders of small synthetic datasets for tests (and benchmarks): dataset folders and raw sources.

``make_dataset`` writes a folder in the dataset layout with a planted, learnable structure:

- label ``j`` has the text ``"<word_j> item"`` where ``word_j`` is a unique made-up word (``label_word(j)``);
- a point's labels follow a Zipf-like popularity (so there are head and tail labels), and its text
  is its labels' words (shuffled) plus filler words: a model that matches words finds the labels;
- ``filter_labels_test.txt`` lists, for every third test point, one label that is not in its truth;
- with images: each label has a random unit prototype in R^D; an item's image embeddings are the
  prototypes of its labels plus small noise (labels: their own prototype), item ``i`` has ``i % (N + 1)``
  images (so some have none), and the maps are pickle-free ``.npz`` (or released-style pickled
  ``.npy`` object arrays with ``pickled_maps=True``).

``make_xc_raw`` and ``make_catalogue`` write the same kind of data as an XC-repository raw folder
(``*.json.gz``) and as a practitioner catalogue (CSV / JSONL / Parquet), for ``prepare`` tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from vixml.data import write_filter, write_label_matrix, write_texts
from vixml.data.image_maps import ImageMap, write_image_map
from vixml.data.manifest import write_manifest

__all__ = [
    "label_word",
    "make_catalogue",
    "make_dataset",
    "make_labels",
    "make_xc_raw",
    "synthetic_images",
    "write_table",
]

_SYLLABLES = ["ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "vu", "ze", "bo", "da", "fe", "gi", "hu", "jo"]
_FILLER = ["the", "with", "for", "new", "set", "pack", "and", "of"]


PLANTED_LABELS = 24  # the label count of the shared planted dataset (tests/conftest.py)


def label_word(j: int) -> str:
    """A unique pronounceable word for label ``j`` (``"kaka"``, ``"kalo"``, ...), at least two syllables."""
    parts = []
    j += len(_SYLLABLES)  # at least two syllables
    while j:
        j, r = divmod(j, len(_SYLLABLES))
        parts.append(_SYLLABLES[r])
    return "".join(reversed(parts))


def make_labels(n_rows: int, n_labels: int, rng: np.random.Generator, max_labels: int = 4) -> sp.csr_matrix:
    """A random binary label matrix (n_rows, n_labels) with Zipf-like label popularity; rows have 1..max_labels."""
    popularity = 1.0 / np.arange(1, n_labels + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    rows, cols = [], []
    for i in range(n_rows):
        k = int(rng.integers(1, min(max_labels, n_labels) + 1))
        labels = rng.choice(n_labels, size=k, replace=False, p=popularity)
        rows += [i] * k
        cols += labels.tolist()
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_labels))


def _texts_for(y: sp.csr_matrix, rng: np.random.Generator) -> list[str]:
    texts = []
    for i in range(y.shape[0]):
        words = [label_word(int(j)) for j in y.indices[y.indptr[i] : y.indptr[i + 1]]]
        words += list(rng.choice(_FILLER, size=2))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts


def synthetic_images(
    y: sp.csr_matrix | None, prototypes: np.ndarray, num_images: int, rng: np.random.Generator
) -> tuple[np.ndarray, ImageMap]:
    """Embeddings (n_images_total, D) and map for items whose labels are the rows of ``y``.

    ``y`` None means the items are the labels themselves (label ``j`` shows prototype ``j``). Item ``i``
    gets ``i % (num_images + 1)`` images.
    """
    n_items = prototypes.shape[0] if y is None else y.shape[0]
    counts = np.arange(n_items) % (num_images + 1)
    embs, indptr = [], [0]
    for i in range(n_items):
        if y is None:
            base = prototypes[i]
        else:
            labels = y.indices[y.indptr[i] : y.indptr[i + 1]]
            base = prototypes[labels].mean(axis=0) if len(labels) else np.zeros(prototypes.shape[1])
        for _ in range(counts[i]):
            embs.append(base + 0.05 * rng.standard_normal(prototypes.shape[1]))
        indptr.append(indptr[-1] + counts[i])
    emb = np.asarray(embs, dtype=np.float32).reshape(-1, prototypes.shape[1])
    order = rng.permutation(len(emb))  # rows in the bank are not in item order, as in the released data
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return emb[order], ImageMap(np.asarray(indptr, dtype=np.int64), inverse.astype(np.int64))


def _write_map(path_npz: Path, image_map: ImageMap, pickled: bool) -> None:
    if not pickled:
        write_image_map(path_npz, image_map)
        return
    entries = np.empty(image_map.n_items, dtype=object)
    for i in range(image_map.n_items):
        rows = image_map.rows_of(i).tolist()
        entries[i] = rows if rows else -1
    np.save(path_npz.with_suffix(".npy"), entries, allow_pickle=True)


def make_dataset(
    directory: str | Path,
    *,
    n_train: int = 40,
    n_test: int = 12,
    n_labels: int = 20,
    max_labels: int = 4,
    with_images: bool = False,
    num_images: int = 2,
    dim: int = 8,
    pickled_maps: bool = False,
    latin1: bool = False,
    manifest: bool = True,
    seed: int = 0,
) -> Path:
    """Write a small synthetic dataset folder (see the module docstring for its planted structure).

    Args:
        directory: the folder to create (parents too).
        n_train, n_test, n_labels: sizes (``n_test=0`` writes no test split).
        max_labels: labels per point are uniform in 1..max_labels.
        with_images: write image embeddings + maps for trn, tst and lbl
            (``{split}_embs_imgs_<N>_<D>_synthetic.npy``, ``{train,test,labels}_imgs_384_<N>_map.npz``).
        num_images: N; dim: D.
        pickled_maps: write the maps as released (pickled object ``.npy``) instead of ``.npz``.
        latin1: write the text files in latin-1 with an accented word (as the public files are).
        manifest: write ``dataset.json`` as ``prepare`` does.
        seed: everything is a function of it.

    Returns:
        The folder, as a Path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    trn_y = make_labels(n_train, n_labels, rng, max_labels)
    tst_y = make_labels(n_test, n_labels, rng, max_labels) if n_test else None
    lbl_texts = [f"{label_word(j)} item" for j in range(n_labels)]
    splits = {"trn": (trn_y, _texts_for(trn_y, rng)), "lbl": (None, lbl_texts)}
    if tst_y is not None:
        splits["tst"] = (tst_y, _texts_for(tst_y, rng))
    for split, (y, texts) in splits.items():
        path = directory / f"{split}.raw.txt"
        if latin1:
            texts = [t + " caf\xe9" for t in texts]
            path.write_bytes("".join(t + "\n" for t in texts).encode("latin-1"))
        else:
            write_texts(path, texts)
        if y is not None:
            write_label_matrix(directory / f"{split}_X_Y.txt", y)
    if tst_y is not None:
        pairs = []
        for i in range(0, n_test, 3):
            outside = np.setdiff1d(np.arange(n_labels), tst_y.indices[tst_y.indptr[i] : tst_y.indptr[i + 1]])
            if outside.size:
                pairs.append((i, int(outside[0])))
        write_filter(directory / "filter_labels_test.txt", np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    if with_images:
        prototypes = rng.standard_normal((n_labels, dim))
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        names = {"trn": "train", "tst": "test", "lbl": "labels"}
        for split, (y, _) in splits.items():
            emb, image_map = synthetic_images(y, prototypes, num_images, rng)
            np.save(directory / f"{split}_embs_imgs_{num_images}_{dim}_synthetic.npy", emb)
            _write_map(directory / f"{names[split]}_imgs_384_{num_images}_map.npz", image_map, pickled_maps)
    if manifest:
        counts = {"n_train": n_train, "n_test": n_test, "n_labels": n_labels}
        write_manifest(directory, source={"kind": "synthetic", "seed": seed}, counts=counts)
    return directory


def make_xc_raw(
    directory: str | Path,
    *,
    n_train: int = 30,
    n_test: int = 10,
    n_labels: int = 15,
    relevance: bool = True,
    seed: int = 0,
) -> tuple[Path, dict]:
    """Write an XC-repository raw folder (``trn/tst/lbl.json.gz``) and return it with the expected content.

    Name the folder with ``Titles`` in it to get a titles dataset under ``text_mode="auto"``.

    Returns:
        ``(folder, expected)`` where ``expected`` holds ``trn_Y``/``tst_Y`` (CSR, values = target_rel
        when ``relevance`` else 1), and the ``title`` / ``title+content`` texts per split.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    expected: dict = {}
    labels = [
        {"uid": f"L{j}", "title": f"{label_word(j)} item", "content": f"about {label_word(j)}"}
        for j in range(n_labels)
    ]
    _write_json_gz(directory / "lbl.json.gz", labels)
    expected["lbl"] = {
        "title": [r["title"] for r in labels],
        "title+content": [f"{r['title']} {r['content']}" for r in labels],
    }
    for split, n in (("trn", n_train), ("tst", n_test)):
        y = make_labels(n, n_labels, rng)
        y.data = rng.choice([1.0, 0.5, 0.25], size=y.nnz).astype(np.float32) if relevance else y.data
        records = []
        for i in range(n):
            ind = y.indices[y.indptr[i] : y.indptr[i + 1]].tolist()
            rec = {"uid": f"{split}{i}", "title": f"point {i}\nof {split}", "content": f"words {i}", "target_ind": ind}
            if relevance:
                rec["target_rel"] = y.data[y.indptr[i] : y.indptr[i + 1]].tolist()
            records.append(rec)
        _write_json_gz(directory / f"{split}.json.gz", records)
        expected[f"{split}_Y"] = y
        expected[split] = {
            "title": [f"point {i} of {split}" for i in range(n)],
            "title+content": [f"point {i} of {split} words {i}" for i in range(n)],
        }
    return directory, expected


def _write_json_gz(path: Path, records: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")


def make_catalogue(
    directory: str | Path, *, fmt: str = "csv", split_column: bool = True, seed: int = 0
) -> tuple[Path, dict]:
    """Write a practitioner catalogue (queries, labels, pairs) in ``fmt`` (``csv``, ``jsonl`` or ``parquet``).

    Queries ``q0..q9`` (q7, q8, q9 are test), labels ``sku-0..sku-5`` listed in a shuffled order, pairs with a
    ``split`` column (``split_column``) or as ``train_pairs`` + ``test_pairs``. Labels carry an ``image_url``.

    Returns:
        ``(folder, expected)``: ``expected`` has ``lbl_ids`` (label-file order), ``trn_ids``, ``tst_ids``,
        ``trn_pairs`` / ``tst_pairs`` as sets of (query id, label id), and the texts.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    label_ids = [f"sku-{k}" for k in rng.permutation(6)]
    labels = [
        {"id": lid, "text": f"product {lid}, blue", "image_url": f"http://img.example/{lid}.jpg"} for lid in label_ids
    ]
    queries = [{"id": f"q{i}", "text": f"query number {i}"} for i in range(10)]
    test = {"q7", "q8", "q9"}
    pairs = []
    for q in queries:
        for lid in rng.choice(label_ids, size=2, replace=False):
            pairs.append({"query_id": q["id"], "label_id": str(lid), "split": "tst" if q["id"] in test else "trn"})
    tables = {"queries": queries, "labels": labels}
    if split_column:
        tables["pairs"] = pairs
    else:
        tables["train_pairs"] = [{k: v for k, v in p.items() if k != "split"} for p in pairs if p["split"] == "trn"]
        tables["test_pairs"] = [{k: v for k, v in p.items() if k != "split"} for p in pairs if p["split"] == "tst"]
    for name, records in tables.items():
        write_table(directory / f"{name}.{fmt}", records)
    expected = {
        "lbl_ids": label_ids,
        "trn_ids": [q["id"] for q in queries if q["id"] not in test],
        "tst_ids": [q["id"] for q in queries if q["id"] in test],
        "trn_pairs": {(p["query_id"], p["label_id"]) for p in pairs if p["split"] == "trn"},
        "tst_pairs": {(p["query_id"], p["label_id"]) for p in pairs if p["split"] == "tst"},
        "lbl_texts": [r["text"] for r in labels],
        "query_texts": {q["id"]: q["text"] for q in queries},
    }
    return directory, expected


def write_table(path: Path, records: list[dict]) -> None:
    """Write records as CSV, JSONL or Parquet by the suffix of ``path``."""
    if path.suffix == ".csv":
        import csv

        columns = list(dict.fromkeys(k for r in records for k in r))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        raise ValueError(f"unknown table suffix {path.suffix}")
