"""The sparse companion fused with the dual encoder, on real datasets nobody here wrote (README, "Sparse companion").

For each dataset, one hybrid run (``configs/cpu-small.yaml``: the offline MiniLM, sparse companion on) gives
the zero-shot encoder, the trained dense source, the sparse source and the fused result through the one
retrieval path; ``+R`` is the dense source with retrieval-augmented scoring. Beside them:

- the peer: omikuji with its own defaults (scikit-learn TF-IDF, word 1-2 grams, no label texts), same split;
- fusion rules compared on the test queries, each tuned on the run's held-out queries (which neither model
  trained on): the convex combination of z-scored sources (vixml's rule), of raw scores, reciprocal-rank
  fusion (k=60, nothing tuned), and a learned ranker (logistic regression over each source's score and rank
  and the label's log training frequency).

Datasets: the bundled WordNet nouns -> hypernyms, and the man-page "see also" set that
``scripts/build_manpages_dataset.py`` builds (its docstring has the apt-get line); give other folders with
``VIXML_HYBRID_DATA=dir1,dir2``. ``VIXML_HYBRID_EPOCHS`` (default 2) bounds the dense training to fit a
2-core CPU; ``--quick``: 1 epoch on the first 2,000 training and 500 test queries.
Peak memory is the process's resident high-water mark after each phase (monotonic).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KEYS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5")
MANPAGES = Path(os.environ.get("VIXML_MANPAGES_DATA", "/tmp/hybrid-data/manpages"))


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _datasets(tmp: Path, quick: bool) -> dict[str, Path]:
    from vixml.data.subset import first_queries as _subset

    given = [Path(p) for p in os.environ.get("VIXML_HYBRID_DATA", "").split(",") if p]
    demo = Path(str(resources.files("vixml") / "resources" / "demo" / "wordnet-hypernyms"))
    folders = {"wordnet": demo, **({"manpages": MANPAGES} if MANPAGES.is_dir() else {})}
    folders.update({p.name: p for p in given})
    if quick:
        folders = {name: _subset(p, tmp / f"{name}-quick", {"trn": 2000, "tst": 500}) for name, p in folders.items()}
    return folders


def run(quick: bool = False) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in _datasets(Path(tmp), quick).items():
            print(f"-- hybrid: {name} ({folder})", file=sys.stderr, flush=True)
            for key, value in one_dataset(folder, Path(tmp) / name, quick).items():
                out[f"{name}_{key}"] = value
    return out


def one_dataset(folder: Path, work: Path, quick: bool) -> dict:
    from vixml.config import load_config
    from vixml.data import load_dataset, prepare_dataset
    from vixml.inference import Predictor
    from vixml.search import to_csr
    from vixml.training import train
    from vixml.training.evaluation import evaluate_predictions, test_filter

    data = work / "data"
    prepare_dataset(folder, data, overwrite=True)
    dataset = load_dataset(data, images=False)
    out: dict = {"train_queries": dataset.n_train, "test_queries": dataset.n_test, "labels": dataset.n_labels}
    epochs = 1 if quick else int(os.environ.get("VIXML_HYBRID_EPOCHS", "2"))
    cfg = load_config(
        HERE.parent / "configs" / "cpu-small.yaml",
        [f"train.epochs={epochs}", "train.eval_every=0", "train.device=cpu"],
    )
    out["epochs"] = epochs
    start = time.perf_counter()
    run_dir = train(cfg, data, work / "run")
    out["train_s"] = round(time.perf_counter() - start, 1)
    state = json.loads((run_dir / "run.json").read_text())
    out["sparse_train_s"] = state.get("sparse_seconds")
    out["sparse_share_of_train_%"] = round(100 * state.get("sparse_seconds", 0) / max(state["seconds"], 1e-9), 1)
    out["peak_mib_after_train"] = _peak_mib()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = {"zero_shot": metrics["zero_shot"], **metrics["sources"]}
    fusion = json.loads((run_dir / "fusion.json").read_text())
    out["dense_weight"] = fusion["dense_weight"]
    predictor = Predictor.load(run_dir)
    for source in ("dense", "sparse", "fused"):
        start = time.perf_counter()
        predictor.predict_dataset(data, k=100, source=source)
        out[f"{source}_predict_s"] = round(time.perf_counter() - start, 1)
    out["peak_mib_after_predict"] = _peak_mib()
    for source in ("dense", "fused"):
        start = time.perf_counter()
        pred = predictor.predict_dataset(data, k=100, augment=True, source=source)
        out[f"{source}+R_predict_s"] = round(time.perf_counter() - start, 1)
        rows[f"{source}+R"] = evaluate_predictions(pred, dataset, cfg.eval)
    start = time.perf_counter()
    scores, ids = omikuji_defaults(dataset)
    out["peer_omikuji_train_and_predict_s"] = round(time.perf_counter() - start, 1)
    from vixml.metrics import filter_predictions

    pairs = test_filter(dataset, cfg.eval)
    peer = to_csr(scores, ids, dataset.n_labels)
    rows["peer_omikuji"] = evaluate_predictions(
        filter_predictions(peer, pairs) if pairs is not None else peer, dataset, cfg.eval
    )
    rows.update(fusion_rules(predictor, dataset, cfg))
    for row, values in rows.items():
        for key in KEYS:
            out[f"{row}_{key}"] = round(100 * float(values[key]), 2)
    return out


def omikuji_defaults(dataset) -> tuple[np.ndarray, np.ndarray]:
    """The peer: omikuji's default forest on scikit-learn TF-IDF (word 1-2 grams), training queries only."""
    from vixml.config import SparseConfig
    from vixml.retrieval import SparseRanker

    with tempfile.TemporaryDirectory() as tmp:
        texts = dataset.trn_texts[list(range(dataset.n_train))]
        peer = SparseConfig(label_texts=False, cluster_k=2, max_depth=20)  # omikuji's own tree defaults (Parabel)
        ranker = SparseRanker.train(texts, dataset.trn_Y, None, peer, Path(tmp) / "s")
        return ranker.search(dataset.tst_texts[list(range(dataset.n_test))], 100)


def fusion_rules(predictor, dataset, cfg) -> dict[str, dict]:
    """Test metrics of each fusion rule, tuned on the run's held-out queries."""
    from vixml.metrics import inverse_propensity, resolve_propensity
    from vixml.retrieval import Fusion, tune
    from vixml.search import to_csr
    from vixml.training.evaluation import evaluate_predictions, test_filter
    from vixml.training.hybrid import holdout_rows, without_rows

    rows = holdout_rows(dataset, predictor.config)
    retriever = predictor.retriever
    width = predictor.config.sparse.candidates
    encoder = predictor.encoder(dataset)
    held = _candidates(retriever, encoder.embed_split("trn", rows=rows), list(dataset.trn_texts[rows.tolist()]), width)
    test_q = encoder.embed_split("tst")
    test_texts = list(dataset.tst_texts[list(range(dataset.n_test))])
    test = [
        np.concatenate(parts)
        for parts in zip(
            *(
                _candidates(retriever, test_q[s : s + 512], test_texts[s : s + 512], width)
                for s in range(0, dataset.n_test, 512)
            ),
            strict=True,
        )
    ]
    A, B = resolve_propensity(cfg.eval.A, cfg.eval.B, dataset.path)
    propensity = inverse_propensity(without_rows(dataset, rows).trn_Y, A=A, B=B)
    truth = dataset.trn_Y[rows]
    freq = np.log1p(np.asarray(without_rows(dataset, rows).trn_Y.sum(axis=0)).ravel())
    pairs = test_filter(dataset, cfg.eval)
    out = {}

    def score(name, fused, ids):
        fused = np.where(ids >= 0, fused, -np.inf)
        order = np.argsort(-fused, axis=1, kind="stable")[:, :100]
        pred = to_csr(
            np.take_along_axis(fused, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1), dataset.n_labels
        )
        if pairs is not None:
            from vixml.metrics import filter_predictions

            pred = filter_predictions(pred, pairs)
        out[name] = evaluate_predictions(pred, dataset, cfg.eval)

    from vixml.retrieval import combine

    for norm in ("zscore", "none"):
        fusion = tune(
            {"dense": held[1], "sparse": held[2]},
            held[0],
            truth,
            normalization=norm,
            propensity=propensity,
            k=cfg.eval.k,
        )
        score(f"convex_{norm}", combine({"dense": test[1], "sparse": test[2]}, test[0] >= 0, fusion), test[0])
    score("rrf", _rrf(test[1], test[2], test[0]), test[0])
    score("learned_logreg", _learned(held, truth, test, freq), test[0])
    score("equal_weights", combine({"dense": test[1], "sparse": test[2]}, test[0] >= 0, Fusion(0.5)), test[0])
    return out


def _candidates(retriever, queries, texts, width):
    """(ids, dense, sparse, found) of each query's fused candidates."""
    ids, sources, found = retriever.candidate_scores(queries, texts, width)
    return ids, sources["dense"], sources["sparse"], found


def _ranks(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.where(valid, scores, -np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :].repeat(order.shape[0], 0), 1)
    return ranks


def _rrf(dense, sparse, ids, k: int = 60):
    valid = ids >= 0
    fused = 1 / (k + 1 + _ranks(dense, valid)) + np.where(sparse > 0, 1 / (k + 1 + _ranks(sparse, valid)), 0)
    return fused


def _features(parts, freq):
    from vixml.retrieval.fusion import normalize

    ids, dense, sparse = parts[0], parts[1], parts[2]
    valid = ids >= 0
    columns = [
        normalize(dense, valid, "zscore"),
        normalize(sparse, valid, "zscore"),
        np.log1p(_ranks(dense, valid)),
        np.log1p(_ranks(sparse, valid)),
        (sparse > 0).astype(float),
        freq[np.maximum(ids, 0)],
    ]
    return np.stack(columns, axis=-1), valid


def _learned(held, truth, test, freq):
    from sklearn.linear_model import LogisticRegression

    x, valid = _features(held, freq)
    y = np.zeros(held[0].shape, dtype=bool)
    for row in range(held[0].shape[0]):
        y[row] = np.isin(held[0][row], truth.indices[truth.indptr[row] : truth.indptr[row + 1]])
    model = LogisticRegression(max_iter=1000, C=1.0).fit(x[valid], y[valid])
    xt, valid_t = _features(test, freq)
    fused = np.full(valid_t.shape, -np.inf)
    fused[valid_t] = model.decision_function(xt[valid_t])
    return fused


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
