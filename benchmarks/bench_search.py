"""Top-100 maximum inner product search over 131,072 x 384 labels: vixml.search against faiss and friends.

Usage: ``python benchmarks/bench_search.py [--quick]`` (prints the figures as JSON).

Measures (medians of 3 repeats, wall-clock, all libraries on the same threads; ``*_vs_faiss`` are
queries/s ratios against faiss ``IndexFlatIP`` measured in the same run):
- our exact ``topk`` (fp32) and ``bf16-rescore`` (with its recall@100 against exact),
- faiss ``IndexFlatIP`` (the peer: ratios are against it), and a plain ``torch.matmul`` + ``torch.topk``
  loop (on the first 2,048 queries),
- hnswlib and faiss HNSW: build time (one build), search time (first 2,048 queries), recall@100
  against exact,
- GFLOP/s of the matmul part inside our ``topk`` next to one large (4096 x 384 x 8192) product:
  ``torch.matmul`` in fp32 (MKL) and bf16, and oneDNN fp32 (what ``topk`` uses on CPU).
- faiss, exact and bf16-rescore again with one thread each, in CPU time (process time) on 2,048
  queries: a cross-check that holds when other processes share the machine (wall-clock ratios then
  swing widely).
Data: random unit vectors (the worst case for graph indexes: no structure to exploit).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from timing import timed

HERE = Path(__file__).resolve().parent

K = 100
DIM = 384
REPEATS = 3
#: Graph parameters (both libraries) and how many queries their searches take (builds dominate the run).
ANN_PARAMS = {"M": 16, "ef_construction": 40, "ef_search": 256}
ANN_QUERIES = 2048
#: Queries of the plain matmul + torch.topk loop (slow; queries/s is what it reports).
PLAIN_QUERIES = 2048
#: Queries of the single-thread CPU-time cross-check (robust to other processes on the machine).
SINGLE_QUERIES = 2048


def run(quick: bool = False, run_dir: Path | None = None) -> dict:
    import faiss
    import torch

    from vixml.search import build_index, gemm, recall_at_k, topk
    from vixml.search.blocks import LabelBlocks
    from vixml.testing.search import normalised

    n_labels, n_queries = (32768, 1024) if quick else (131072, 8192)
    labels = normalised(n_labels, DIM, seed=1)
    queries = normalised(n_queries, DIM, seed=2)
    flops = 2.0 * n_labels * n_queries * DIM
    out: dict = {
        "labels": n_labels,
        "queries": n_queries,
        "dim": DIM,
        "k": K,
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(),
    }

    def search(name: str, fn, rows=None):
        """Median seconds of ``fn(queries[:rows])`` over REPEATS runs after a warm-up on 256 queries."""
        batch = queries if rows is None else queries[:rows]
        fn(queries[:256])  # compilation, first-call set-up
        timing = timed(lambda: fn(batch), REPEATS)
        seconds, result = timing.wall, timing.result
        out[f"{name}_s"] = round(seconds, 4)
        out[f"{name}_qps"] = round(len(batch) / seconds, 1)
        _log(f"{name}: {seconds:.3f} s for {len(batch)} queries, {len(batch) / seconds:.0f} queries/s")
        return result

    flat = build_index("faiss-flat", labels)
    _, faiss_ids = search("faiss_flat", lambda q: flat.search(q, K))
    chosen = gemm.choice(DIM)
    out["exact_fp32_backend"] = f"{chosen.batch} ({chosen.source})"
    _, exact_ids = search("exact_fp32", lambda q: topk(q, labels, K, device="cpu"))
    for backend in gemm.installed():  # every backend the machine's choice was made among
        search(f"exact_fp32_{backend}", lambda q, b=backend: topk(q, labels, K, device="cpu", backend=b))
    _, bf16_ids = search("bf16_rescore", lambda q: topk(q, labels, K, device="cpu", precision="bf16-rescore"))
    _, int8_ids = search("int8_rescore", lambda q: topk(q, labels, K, device="cpu", precision="int8-rescore"))
    search("matmul_topk", lambda q: _plain(q, labels), rows=min(PLAIN_QUERIES, n_queries))
    out["bf16_rescore_recall@100"] = round(recall_at_k(bf16_ids, exact_ids), 5)
    out["int8_rescore_recall@100"] = round(recall_at_k(int8_ids, exact_ids), 5)
    out["faiss_flat_recall@100"] = round(recall_at_k(faiss_ids, exact_ids), 5)
    timed_names = ["exact_fp32", *(f"exact_fp32_{b}" for b in gemm.installed()), "bf16_rescore", "int8_rescore"]
    for name in [*timed_names, "matmul_topk"]:
        out[f"{name}_vs_faiss"] = round(out[f"{name}_qps"] / out["faiss_flat_qps"], 3)

    # GFLOP/s: the products inside topk (timed in place), then single large products
    spent = _time_products(LabelBlocks, lambda: topk(queries, labels, K, device="cpu"))
    out["exact_fp32_matmul_share"] = round(spent / out["exact_fp32_s"], 3)
    out["exact_fp32_matmul_gflops"] = round(flops / spent / 1e9, 1)
    spent = _time_products(LabelBlocks, lambda: topk(queries, labels, K, device="cpu", precision="bf16-rescore"))
    out["bf16_rescore_matmul_gflops"] = round(flops / spent / 1e9, 1)
    ceilings = {f"big_{name}_gflops": v for name, v in gemm.ceilings(m=4096, n=8192, k=DIM, repeats=REPEATS).items()}
    out |= ceilings
    best_fp32 = max(v for name, v in ceilings.items() if name.startswith("big_fp32"))
    out["exact_fp32_gflops"] = round(flops / out["exact_fp32_s"] / 1e9, 1)
    out["exact_fp32_vs_best_fp32_gemm"] = round(out["exact_fp32_gflops"] / best_fp32, 3)
    out |= _single_thread(queries[:SINGLE_QUERIES], labels, flat, topk)
    if not quick:
        out |= _large(topk, recall_at_k)
    if run_dir is not None:
        out |= _real_embeddings(run_dir, topk, recall_at_k)

    # graph indexes: one build each (the slow part), searches on the first ANN_QUERIES queries
    ann_rows = min(ANN_QUERIES, n_queries)
    for name in ("hnswlib", "faiss-hnsw"):
        key = name.replace("-", "_")
        start = time.perf_counter()
        index = build_index(name, labels, **ANN_PARAMS)
        out[f"{key}_build_s"] = round(time.perf_counter() - start, 2)
        _log(f"{name}: built in {out[f'{key}_build_s']} s")
        _, ids = search(key, lambda q, index=index: index.search(q, K), rows=ann_rows)
        out[f"{key}_recall@100"] = round(recall_at_k(ids, exact_ids[:ann_rows]), 4)
        out[f"{key}_vs_faiss"] = round(out[f"{key}_qps"] / out["faiss_flat_qps"], 3)
        out[f"{key}_params"] = json.dumps(ANN_PARAMS)
        del index
    return out


def _plain(queries, labels, block: int = 1024):
    """The obvious loop: one matmul per query block, then torch.topk over all labels."""
    import torch

    q, x = torch.from_numpy(queries), torch.from_numpy(labels)
    parts = []
    for start in range(0, len(q), block):
        parts.append(torch.topk(q[start : start + block] @ x.T, K, dim=1).indices)
    return torch.cat(parts).numpy()


def _time_products(blocks_class, fn) -> float:
    """Seconds spent in ``LabelBlocks.scores`` (the score-block products) during one call of ``fn``."""
    original = blocks_class.scores
    spent = [0.0]

    def scores(self, *args, **kwargs):
        start = time.perf_counter()
        result = original(self, *args, **kwargs)
        spent[0] += time.perf_counter() - start
        return result

    blocks_class.scores = scores
    try:
        fn()
    finally:
        blocks_class.scores = original
    return spent[0]


def _large(topk, recall_at_k, n_labels: int = 1_305_265, n_queries: int = 2000) -> dict:
    """LF-AmazonTitles-1.3M-sized labels (1,305,265 x 384, 2 GB): exact, int8-rescore and faiss, one run each."""
    import faiss

    from vixml.testing.search import normalised

    labels = normalised(n_labels, DIM, seed=3)
    queries = normalised(n_queries, DIM, seed=4)
    figures = {"large_labels": n_labels, "large_queries": n_queries}
    runs = {
        "faiss_flat": lambda: faiss.knn(queries, labels, K, metric=faiss.METRIC_INNER_PRODUCT)[::-1],
        "exact_fp32": lambda: topk(queries, labels, K, device="cpu"),
        "int8_rescore": lambda: topk(queries, labels, K, device="cpu", precision="int8-rescore"),
    }
    ids = {}
    for name, fn in runs.items():
        timing = timed(fn, 1, warmup=False)
        ids[name] = timing.result[1]
        figures[f"large_{name}_qps"] = round(n_queries / timing.wall, 1)
        _log(f"1.3M labels, {name}: {figures[f'large_{name}_qps']} queries/s")
    for name in ("exact_fp32", "int8_rescore"):
        figures[f"large_{name}_vs_faiss"] = round(figures[f"large_{name}_qps"] / figures["large_faiss_flat_qps"], 3)
    figures["large_int8_rescore_recall@100"] = round(recall_at_k(ids["int8_rescore"], ids["exact_fp32"]), 5)
    return figures


def _real_embeddings(run_dir: Path, topk, recall_at_k) -> dict:
    """Recall@100 of the reduced precisions against exact on a trained run's label and test-query embeddings."""
    import numpy as np

    from vixml.inference import Predictor

    predictor = Predictor.load(run_dir)
    labels = np.asarray(predictor.label_embeddings, dtype=np.float32)
    data = json.loads((run_dir / "run.json").read_text())["data"]["path"]
    from vixml.data import load_dataset

    dataset = load_dataset(data, images=False)
    texts = list(dataset.tst_texts[list(range(dataset.n_test))])
    queries = predictor.encode(texts)
    exact = topk(queries, labels, K, device="cpu")[1]
    figures = {"real_run": str(run_dir), "real_labels": labels.shape[0], "real_queries": queries.shape[0]}
    for precision in ("bf16-rescore", "int8-rescore"):
        found = topk(queries, labels, K, device="cpu", precision=precision)[1]
        figures[f"real_{precision.replace('-', '_')}_recall@100"] = round(recall_at_k(found, exact), 5)
    return figures


def _single_thread(queries, labels, flat, topk) -> dict:
    """CPU seconds per query with one thread each (process time): faiss vs ours, immune to other load."""
    import faiss
    import torch

    threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    cases = {
        "faiss_flat": lambda: flat.search(queries, K),
        "exact_fp32": lambda: topk(queries, labels, K, device="cpu"),
        "bf16_rescore": lambda: topk(queries, labels, K, device="cpu", precision="bf16-rescore"),
    }
    figures = {}
    try:
        for name, fn in cases.items():
            cpu = timed(fn, REPEATS).cpu
            figures[f"{name}_1thread_cpu_us_per_query"] = round(cpu / len(queries) * 1e6, 1)
            _log(f"one thread, {name}: {figures[f'{name}_1thread_cpu_us_per_query']} CPU us/query")
    finally:
        torch.set_num_threads(threads[0])
        faiss.omp_set_num_threads(threads[1])
    for name in ("exact_fp32", "bf16_rescore"):
        ratio = figures["faiss_flat_1thread_cpu_us_per_query"] / figures[f"{name}_1thread_cpu_us_per_query"]
        figures[f"{name}_vs_faiss_1thread"] = round(ratio, 3)
    return figures


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32,768 labels and 1,024 queries; no 1.3M stage")
    parser.add_argument("--run", type=Path, help="a trained run (the demo's): recall of bf16/int8 on its embeddings")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, run_dir=args.run), indent=2))
