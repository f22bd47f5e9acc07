"""LF-AmazonTitles-1.3M scale on one CPU box: prepare, validate, stats, search and evaluate, with peak memory.

A synthetic dataset of the real one's shape (2,248,619 training queries, 1,305,265 labels, about 22 labels
per training query, Zipf-like label popularity, short title texts) is generated, then every stage runs in
its own process so that its peak memory is its own: ``ru_maxrss`` (which counts the touched pages of
memory-mapped files, page cache the kernel takes back under pressure) and the peak anonymous memory
(``RssAnon`` sampled every 10 ms). The stages are the commands themselves, run in the child process:
``vixml data prepare`` (in place: the manifest, validating, then the stats), ``vixml data validate``,
``vixml data stats``, an exact top-100 ``search`` of test queries against the (L, 384) float32 label
embeddings memory-mapped from disk and read in bounded blocks, its top-100 given to every test row and
written as ``vixml predict`` writes it (``to_csr``), and ``vixml evaluate`` of those predictions (P@k,
nDCG@k, PSP@k, recall). Before each stage the product's own estimate (:mod:`vixml.data.footprint`,
:func:`vixml.search.search_memory`, the ones the commands check) is compared with the memory available
(:func:`vixml.memory_fit.require`) and the stage is refused with the same message a command gives.

``--scale`` shrinks every size (the runner uses 0.05 with ``--quick``, 1.0 otherwise); ``--search-queries``
bounds the searched test queries (exact search costs n x L x D: 2,000 x 1.3M x 384 is ~1e12 FLOP);
``--text-labels`` writes the label files in the XC text format instead of ``.npz``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL = {"n_train": 2_248_619, "n_test": 970_237, "n_labels": 1_305_265, "labels_per_query": 22.2, "dim": 384}
#: torch's own libraries, loaded by the search (measured: 100 MiB anonymous on top of the others).
_TORCH_BYTES = 128 << 20
STAGES = ("generate", "prepare", "validate", "stats", "search", "evaluate")


def _sizes(scale: float, search_queries: int) -> dict:
    s = {k: max(8, int(v * scale)) for k, v in FULL.items() if k.startswith("n_")}
    s["labels_per_query"] = FULL["labels_per_query"]
    s["dim"] = FULL["dim"]
    s["search_queries"] = min(search_queries, s["n_test"])
    return s


def _estimate(name: str, folder: Path, s: dict) -> tuple[int, str]:
    """(bytes, what) a stage needs at most: the product's own estimates (:mod:`vixml.data.footprint`,
    :func:`vixml.search.search_memory`), the ones the commands check; the generator's is its own."""
    from vixml.data.footprint import csr_bytes, evaluate_need, folder_need, prepare_need, stats_need
    from vixml.memory_fit import BASE_BYTES

    data, emb = folder / "data", folder / "emb"
    if name == "generate":  # COO -> CSR with duplicates summed, one split at a time
        nnz = int(max(s["n_train"], s["n_test"]) * s["labels_per_query"])
        return BASE_BYTES + 5 * csr_bytes(s["n_train"], s["n_labels"], nnz), "the generated label matrices"
    if name == "validate":
        return folder_need(data)[:2]
    if name == "prepare":
        return prepare_need(data)[:2]
    if name == "stats":
        return stats_need(data)[:2]
    if name == "search":
        from vixml.search import search_memory, to_csr_memory

        n, L, d = s["search_queries"], s["n_labels"], s["dim"]
        # the searched rows' top-100 tiled to every test row (12 bytes per prediction), then made a CSR; what
        # the search held is not all given back by then (measured), so the two add up
        tiled = 12 * s["n_test"] * 100 + to_csr_memory(s["n_test"], 100)
        searched = 4 * n * d + search_memory(n, L, d, 100) + tiled
        return BASE_BYTES + _TORCH_BYTES + searched, "the search"
    ext = ".txt" if s.get("text_labels") else ".npz"
    return evaluate_need(emb / "pred.npz", data / f"tst_X_Y{ext}", data / f"trn_X_Y{ext}", 100)


def _rng_labels(n: int, s: dict, rng: np.random.Generator):
    import scipy.sparse as sp

    counts = np.clip(rng.poisson(s["labels_per_query"] - 1, n) + 1, 1, 200)
    cols = (s["n_labels"] * rng.random(int(counts.sum())) ** 2.5).astype(np.int32)  # head labels are frequent
    rows = np.repeat(np.arange(n, dtype=np.int32), counts)
    y = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (rows, cols)), shape=(n, s["n_labels"]))
    y.sum_duplicates()
    y.data[:] = 1.0
    return y


def _texts(n: int, prefix: str, rng: np.random.Generator) -> list[str]:
    words = rng.integers(0, 50_000, size=(n, 4))
    return [f"{prefix} w{a} w{b} w{c} w{d}" for a, b, c, d in words.tolist()]


def _command(args: list[str]) -> tuple[int, str]:
    """``vixml ARGS`` in this process: (exit code, what it printed on stdout)."""
    import contextlib
    import io

    from vixml.cli.main import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(args)
    if code != 0:
        raise RuntimeError(f"vixml {' '.join(args)} exited {code}")
    return code, printed.getvalue()


def stage(name: str, folder: Path, s: dict) -> dict:
    """Run one stage in this process; its figures."""
    from vixml.data import write_label_matrix, write_texts

    data, emb = folder / "data", folder / "emb"
    out: dict = {}
    if name == "generate":
        rng = np.random.default_rng(0)
        data.mkdir(parents=True, exist_ok=True)
        emb.mkdir(parents=True, exist_ok=True)
        for split, n in (("trn", s["n_train"]), ("tst", s["n_test"])):
            y = _rng_labels(n, s, rng)
            write_label_matrix(data / f"{split}_X_Y{'.txt' if s.get('text_labels') else '.npz'}", y)
            out[f"{split}_nnz"] = int(y.nnz)
            del y
            write_texts(data / f"{split}.raw.txt", _texts(n, "item", rng))
        write_texts(data / "lbl.raw.txt", _texts(s["n_labels"], "label", rng))
        labels = np.lib.format.open_memmap(emb / "labels.npy", "w+", np.float32, (s["n_labels"], s["dim"]))
        for start in range(0, s["n_labels"], 1 << 16):  # written block by block: never whole in memory
            block = rng.standard_normal((min(1 << 16, s["n_labels"] - start), s["dim"]), dtype=np.float32)
            labels[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        labels.flush()
        del labels
        queries = rng.standard_normal((s["search_queries"], s["dim"]), dtype=np.float32)
        np.save(emb / "queries.npy", queries / np.linalg.norm(queries, axis=1, keepdims=True))
        out["bytes_on_disk"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    elif name in ("prepare", "validate", "stats"):  # the commands themselves, their memory check included
        args = {
            "prepare": ["data", "prepare", str(data), str(data), "--family", "amazon", "--json"],
            "validate": ["data", "validate", str(data), "--json"],
            "stats": ["data", "stats", str(data), "--json"],
        }[name]
        code, printed = _command(args)
        out["exit"] = code
        if name == "stats":
            st = json.loads(printed)
            out["avg_labels_per_query"] = round(st["trn"]["avg_labels_per_point"], 2)
            out["labels_without_train_points"] = st["labels_without_train_points"]
    elif name == "search":
        from vixml.data import write_label_matrix
        from vixml.search import to_csr, topk

        labels = np.load(emb / "labels.npy", mmap_mode="r")
        queries = np.load(emb / "queries.npy")
        scores, indices = topk(queries, labels, 100, device="cpu")
        del labels
        rows = np.arange(s["n_test"]) % len(queries)  # every test row gets the top-100 of a searched query
        pred = to_csr(scores[rows], indices[rows], s["n_labels"])  # what `vixml predict` writes, the same way
        del rows
        write_label_matrix(emb / "pred.npz", pred)
        out["queries_per_s"] = None  # filled by the caller from the time
    elif name == "evaluate":
        ext = ".txt" if s.get("text_labels") else ".npz"
        args = ["--pred", str(emb / "pred.npz"), "--true", str(data / f"tst_X_Y{ext}")]
        out["exit"] = _command(["evaluate", *args, "--train", str(data / f"trn_X_Y{ext}"), "--json"])[0]
    return out


def _child(name: str, folder: Path, s: dict) -> None:
    start = time.perf_counter()
    figures = stage(name, folder, s)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(figures), flush=True)


def _peak_anon(child: subprocess.Popen) -> int:
    """The child's peak anonymous resident memory (``RssAnon``, sampled every 10 ms until it ends): its
    ``ru_maxrss`` counts the pages of memory-mapped files too, which the kernel takes back under pressure."""
    peak, status = 0, Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return peak


def run(
    quick: bool = False,
    scale: float | None = None,
    search_queries: int = 2000,
    folder: Path | None = None,
    text_labels: bool = False,
):
    from vixml.memory_fit import require

    scale = (0.05 if quick else 1.0) if scale is None else scale
    s = _sizes(scale, search_queries)
    s["text_labels"] = text_labels
    results: dict = {"scale": scale, **{k: v for k, v in s.items() if k != "labels_per_query"}}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name in STAGES:
            need, what = _estimate(name, Path(tmp), s)
            results[f"{name}_estimate_mib"] = round(need / 2**20)
            require(need, what, "Run it with a smaller --scale.", command=f"bench_scale {name}")
            child = subprocess.Popen(
                [sys.executable, __file__, "--child", name, "--folder", tmp, "--sizes", json.dumps(s)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            results[f"{name}_peak_anon_mib"] = round(_peak_anon(child) / 2**20, 1)
            stdout, stderr = child.communicate()
            done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
            if done.returncode != 0:
                raise RuntimeError(f"bench_scale: stage {name} failed:\n{done.stderr[-2000:]}")
            line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
            for key, value in json.loads(line[len("RESULT ") :]).items():
                if value is not None:
                    results[f"{name}_{key}"] = value
            measured = (
                f"estimate {results[f'{name}_estimate_mib']} MiB, peak anon {results[f'{name}_peak_anon_mib']} MiB"
            )
            print(f"bench_scale {name}: {measured}; {line}", file=sys.stderr, flush=True)
    results["search_queries_per_s"] = round(s["search_queries"] / max(results["search_seconds"], 1e-9), 1)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--sizes")
    parser.add_argument("--scale", type=float, default=None)
    parser.add_argument("--search-queries", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--text-labels", action="store_true", help="Label files in the XC text format, not .npz.")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.folder, json.loads(args.sizes))
    else:
        figures = run(args.quick, args.scale, args.search_queries, args.folder, args.text_labels)
        print(json.dumps(figures, indent=2))
