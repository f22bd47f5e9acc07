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


def run(quick: bool = False) -> dict:
    import faiss
    import torch

    from vixml.search import build_index, recall_at_k, topk
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
    _, exact_ids = search("exact_fp32", lambda q: topk(q, labels, K, device="cpu"))
    _, bf16_ids = search("bf16_rescore", lambda q: topk(q, labels, K, device="cpu", precision="bf16-rescore"))
    search("matmul_topk", lambda q: _plain(q, labels), rows=min(PLAIN_QUERIES, n_queries))
    out["bf16_rescore_recall@100"] = round(recall_at_k(bf16_ids, exact_ids), 5)
    out["faiss_flat_recall@100"] = round(recall_at_k(faiss_ids, exact_ids), 5)
    for name in ("exact_fp32", "bf16_rescore", "matmul_topk"):
        out[f"{name}_vs_faiss"] = round(out[f"{name}_qps"] / out["faiss_flat_qps"], 3)

    # GFLOP/s: the products inside topk (timed in place), then single large products
    spent = _time_products(LabelBlocks, lambda: topk(queries, labels, K, device="cpu"))
    out["exact_fp32_matmul_share"] = round(spent / out["exact_fp32_s"], 3)
    out["exact_fp32_matmul_gflops"] = round(flops / spent / 1e9, 1)
    spent = _time_products(LabelBlocks, lambda: topk(queries, labels, K, device="cpu", precision="bf16-rescore"))
    out["bf16_rescore_matmul_gflops"] = round(flops / spent / 1e9, 1)
    out |= _big_products(torch)
    out |= _single_thread(queries[:SINGLE_QUERIES], labels, flat, topk)

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


def _big_products(torch) -> dict:
    """GFLOP/s of one (4096 x 384) @ (384 x 8192) product: torch.matmul fp32 (MKL) / bf16, oneDNN fp32."""
    from vixml.search.blocks import onednn_available

    m, n = 4096, 8192
    a, b = torch.randn(m, DIM), torch.randn(n, DIM)
    ab, bb = a.bfloat16(), b.bfloat16()
    out32, out16 = torch.empty(m, n), torch.empty(m, n, dtype=torch.bfloat16)
    flops = 2.0 * m * n * DIM
    cases = {
        "matmul_fp32": lambda: torch.matmul(a, b.T, out=out32),
        "matmul_bf16": lambda: torch.matmul(ab, bb.T, out=out16),
    }
    if onednn_available():
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        cases["onednn_fp32"] = lambda: torch.nn.functional.linear(am, bm).to_dense()
    figures = {}
    with torch.inference_mode():
        for name, fn in cases.items():
            seconds = timed(fn, 2 * REPEATS + 1, warmup=True).wall
            figures[f"big_{name}_gflops"] = round(flops / seconds / 1e9, 1)
            _log(f"big {name}: {figures[f'big_{name}_gflops']} GFLOP/s")
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
    parser.add_argument("--quick", action="store_true", help="32,768 labels and 1,024 queries")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
