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
:func:`vixml.planning.search_memory`, the ones the commands check) is compared with the memory available
(:func:`vixml.memory_fit.require`) and the stage is refused with the same message a command gives.

``--scale`` shrinks every size (the runner uses 0.05 with ``--quick``, 1.0 otherwise); ``--search-queries``
bounds the searched test queries (exact search costs n x L x D: 2,000 x 1.3M x 384 is ~1e12 FLOP);
``--text-labels`` writes the label files in the XC text format instead of ``.npz``.

Training at this scale (``--stages generate,train_hybrid``): one epoch of :func:`vixml.training.train`, the
command's own code, memory check included, of a tiny random BERT (2 layers, 32 wide, a WordPiece tokenizer
trained on the data's texts) with the empty config's PRIME and NGAME, their schedule made to cluster the
query bank and refresh the centroids within the epoch, and the sparse companion on (``sparse.trees=1``), a
batch of ``--batch`` (2048), evaluated on the first ``--test-queries`` (20,000) test queries (a dataset
folder ``hybrid/`` sharing the training files). ``train_sparse`` trains the sparse companion alone, as
``train()`` does. ``--set key=value`` adds to the run's config (``sparse.ngrams=1``, ...); ``--threads``
bounds the threads of torch, numba and omikuji (on a shared machine, 2 torch threads fighting another
process for the 2 cores made a training step 3.4x slower than 1 thread). The child marks where each phase
of the run begins and ends (wrappers round the trainer's and the companion's functions, which are left
unchanged; the run's log lines are kept with their times) and the parent's RssAnon samples are attributed
to the phases: each phase's own time and peak, next to the product's estimate for it
(:func:`vixml.planning.training_phases`: what the process held when ``train()`` checked its
memory, plus what the run keeps, plus the phase). ``--texts related`` writes query texts made of words of
their labels' texts (Zipf-like word frequencies) instead of uniform random words, for the sparse companion.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import json
import logging
import os
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
#: Stages run on request only (``--stages``): training at this scale takes much longer than the others.
TRAIN_STAGES = ("train_hybrid", "train_sparse")
#: The run's settings beside the empty config: one epoch with NGAME clustering and a PRIME centroid refresh
#: inside it, the sparse companion with one tree.
TRAIN_SETTINGS = (
    "train.epochs=1",
    "train.device=cpu",
    "mining.start_epoch=0",
    "mining.update_every=1",
    "prototypes.centroid_refresh_every=1",
    "sparse={}",
    "sparse.trees=1",
)
_HERE = Path(__file__).resolve().parent


def _sizes(scale: float, search_queries: int, test_queries: int = 20_000) -> dict:
    s = {k: max(8, int(v * scale)) for k, v in FULL.items() if k.startswith("n_")}
    s["labels_per_query"] = FULL["labels_per_query"]
    s["dim"] = FULL["dim"]
    s["search_queries"] = min(search_queries, s["n_test"])
    s["train_test"] = min(test_queries, s["n_test"])
    return s


def _estimate(name: str, folder: Path, s: dict) -> tuple[int, str]:
    """(bytes, what) a stage needs at most: the product's own estimates (:mod:`vixml.data.footprint`,
    :func:`vixml.planning.search_memory`), the ones the commands check; the generator's is its own."""
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
        from vixml.planning import search_memory, to_csr_memory

        n, L, d = s["search_queries"], s["n_labels"], s["dim"]
        # the searched rows' top-100 tiled to every test row (12 bytes per prediction), then made a CSR; what
        # the search held is not all given back by then (measured), so the two add up
        tiled = 12 * s["n_test"] * 100 + to_csr_memory(s["n_test"], 100)
        searched = 4 * n * d + search_memory(n, L, d, 100) + tiled
        return BASE_BYTES + _TORCH_BYTES + searched, "the search"
    if name in TRAIN_STAGES:  # the dataset's load; train() checks the run's own need itself (recorded)
        return folder_need(folder / "hybrid")[:2]
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


#: ``--texts related``: a vocabulary of this many words, drawn with Zipf-like frequencies.
_RELATED_VOCABULARY = 200_000


def _zipf_words(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return (_RELATED_VOCABULARY * rng.random(shape) ** 3).astype(np.int64)  # word 0 in 1.7% of the draws


def _related_texts(y, label_words: np.ndarray, prefix: str, rng: np.random.Generator) -> list[str]:
    """Six words per query: four from the texts of its labels (a random label, a random word of its text each),
    two drawn from the whole vocabulary: texts that say something about their labels, as titles do."""
    n = y.shape[0]
    counts = np.maximum(np.diff(y.indptr), 1)
    picks = y.indptr[:-1, None] + (rng.random((n, 4)) * counts[:, None]).astype(np.int64)
    labels = y.indices[np.minimum(picks, max(y.nnz - 1, 0))]
    words = np.concatenate(
        [label_words[labels, rng.integers(0, label_words.shape[1], (n, 4))], _zipf_words((n, 2), rng)], axis=1
    )
    return [f"{prefix} " + " ".join(f"w{w}" for w in row) for row in words.tolist()]


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        import shutil

        shutil.copyfile(source, target)


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
        related = s.get("texts") == "related"
        label_words = _zipf_words((s["n_labels"], 4), rng) if related else None
        data.mkdir(parents=True, exist_ok=True)
        emb.mkdir(parents=True, exist_ok=True)
        ext = ".txt" if s.get("text_labels") else ".npz"
        training = any(wanted in TRAIN_STAGES for wanted in s.get("stages", ()))
        for split, n in (("trn", s["n_train"]), ("tst", s["n_test"])):
            y = _rng_labels(n, s, rng)
            write_label_matrix(data / f"{split}_X_Y{ext}", y)
            out[f"{split}_nnz"] = int(y.nnz)
            texts = _related_texts(y, label_words, "item", rng) if related else _texts(n, "item", rng)
            write_texts(data / f"{split}.raw.txt", texts)
            if split == "tst" and training:  # the training stages' folder: its test split cut to bound evaluation
                hybrid = folder / "hybrid"
                hybrid.mkdir(exist_ok=True)
                write_label_matrix(hybrid / f"tst_X_Y{ext}", y[: s["train_test"]])
                write_texts(hybrid / "tst.raw.txt", texts[: s["train_test"]])
            del y, texts
        if related:
            write_texts(
                data / "lbl.raw.txt", ("label " + " ".join(f"w{w}" for w in row) for row in label_words.tolist())
            )
        else:
            write_texts(data / "lbl.raw.txt", _texts(s["n_labels"], "label", rng))
        if training:
            for file in (f"trn_X_Y{ext}", "trn.raw.txt", "lbl.raw.txt"):
                _link(data / file, folder / "hybrid" / file)
        if "search" not in s.get("stages", STAGES):
            out["bytes_on_disk"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            return out
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
    elif name in TRAIN_STAGES:
        out.update(_train(name, folder, s))
    return out


# ---------------------------------------------------------------------------------------------- training
class _Phases:
    """Where the run is, written as it changes: ``[time, "outer > inner"]`` lines of a file the parent reads.

    Phases nest (the final bank refill inside the final evaluation); a time belongs to the innermost one."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the child's life
        self.stack: list[str] = []

    def _mark(self) -> None:
        self.file.write(json.dumps([time.time(), " > ".join(self.stack)]) + "\n")
        self.file.flush()

    @contextlib.contextmanager
    def phase(self, name: str):
        self.stack.append(name)
        self._mark()
        try:
            yield
        finally:
            self.stack.pop()
            self._mark()

    def wrap(self, owner, attr: str, name) -> None:
        """Mark every call of ``owner.attr`` as the phase ``name`` (or ``name(*args)`` when callable)."""
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            with self.phase(name(*args) if callable(name) else name):
                return original(*args, **kwargs)

        setattr(owner, attr, staticmethod(wrapper) if isinstance(owner, type) and _static(owner, attr) else wrapper)


def _static(owner: type, attr: str) -> bool:
    """Whether ``owner.attr`` is a class or static method (replaced by a static wrapper of its bound self)."""
    for klass in owner.__mro__:
        if attr in vars(klass):
            return isinstance(vars(klass)[attr], classmethod | staticmethod)
    return False


class _LogLines(logging.Handler):
    """The run's log lines with their times (``record.created``: the clock of the phase marks)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.created, record.getMessage()))


def _instrument(phases: _Phases, checked: dict) -> None:
    """Mark the run's phases by wrapping the functions ``train()`` calls (nothing in them changes)."""
    import omikuji

    import vixml.retrieval.sparse as sparse_mod
    import vixml.training.hooks as hooks_mod
    import vixml.training.run as run_mod
    import vixml.training.trainer as trainer_mod
    from vixml import memory_fit, planning
    from vixml.models.prototypes import LabelPrototypes

    check = run_mod._require_training_fits

    def require_training_fits(cfg, dataset, data_dir, device, backbone=None):  # what train() checks, in parts
        checked["resident"] = memory_fit.resident_bytes()
        found = planning.training_phases(cfg, dataset, device, backbone=backbone)
        if found is not None:
            checked["held"], checked["phases"] = found.held, dict(found.phases)
        checked["need"], checked["what"] = planning.training_need(cfg, dataset, device, backbone=backbone)
        return check(cfg, dataset, data_dir, device, backbone)

    run_mod._require_training_fits = require_training_fits
    phases.wrap(run_mod, "load_dataset", "loading the dataset")
    phases.wrap(run_mod, "sparse_companion", "sparse companion (texts, TF-IDF)")
    phases.wrap(sparse_mod, "_write_xmc_file", "XMC file for omikuji")
    phases.wrap(omikuji.Model, "train_on_data", "omikuji forest")
    phases.wrap(sparse_mod.SparseRanker, "save", "save")
    phases.wrap(sparse_mod.SparseRanker, "load", "load")
    phases.wrap(run_mod, "Trainer", "trainer set-up (sampler, optimiser, bank)")
    phases.wrap(hooks_mod.PrimeCentroids, "start", "PRIME's start")
    phases.wrap(hooks_mod.PrimeCentroids, "refill", "refilling the query bank")
    phases.wrap(trainer_mod.Trainer, "_train_epoch", "training epoch")
    phases.wrap(trainer_mod.Trainer, "_between_epochs", "between epochs")
    phases.wrap(hooks_mod, "balanced_kmeans", "clustering")
    phases.wrap(LabelPrototypes, "update_centroids", "centroids")
    phases.wrap(trainer_mod.Trainer, "save_checkpoint", "checkpoint")
    phases.wrap(
        trainer_mod.Trainer,
        "evaluate_with_predictions",
        lambda trainer, *a: "zero-shot evaluation" if trainer.state.step == 0 else "dense test evaluation",
    )
    phases.wrap(trainer_mod.Trainer, "finalize", "final bank refill (exact PRIME centroids)")
    phases.wrap(trainer_mod.Trainer, "label_embeddings", "label embeddings")
    phases.wrap(run_mod, "tune_fusion", "fusion tuning (held-out queries)")
    phases.wrap(run_mod, "_sources", "fused test evaluation (dense, sparse, fused)")


def _tiny_bert(folder: Path, texts) -> Path:
    """A random 2-layer, 32-wide BERT with a WordPiece tokenizer trained on the data's texts."""
    from vixml.testing.models import make_tiny_bert

    sample = [texts[i] for i in range(0, len(texts), max(1, len(texts) // 20_000))]
    return make_tiny_bert(folder / "tiny-bert", vocab_texts=sample)


def _train(name: str, folder: Path, s: dict) -> dict:
    """One hybrid training run (``train_hybrid``) or its sparse companion alone (``train_sparse``)."""
    from vixml.config import RunConfig, apply_overrides
    from vixml.run_folder import RunFolder
    from vixml.training import train
    from vixml.training.hybrid import holdout_rows, sparse_companion, without_rows

    data, run_dir = folder / "hybrid", folder / f"run-{name}"
    phases, log, checked = _Phases(folder / f"{name}.phases.jsonl"), _LogLines(), {}
    logging.getLogger("vixml").addHandler(log)
    logging.getLogger("vixml").setLevel(logging.INFO)
    with phases.phase("tiny BERT"):
        from vixml.data.texts import read_texts

        model = _tiny_bert(folder, read_texts(data / "trn.raw.txt"))
    _instrument(phases, checked)
    overrides = [
        f"model.name_or_path={model}",
        *TRAIN_SETTINGS,
        f"train.batch_size={s['batch_size']}",
        *s.get("overrides", ()),
    ]
    cfg = apply_overrides(RunConfig(), overrides)
    if name == "train_hybrid":
        train(cfg, data, run_dir)
    else:
        import torch

        import vixml.training.run as run_mod
        from vixml import memory_fit, planning

        dataset = run_mod.load_dataset(data, images=False)
        checked["resident"] = memory_fit.resident_bytes()  # as train() would check it
        found = planning.training_phases(cfg, dataset, torch.device("cpu"))
        checked["held"], checked["phases"] = found.held, dict(found.phases)
        rows = holdout_rows(dataset, cfg)
        with phases.phase("sparse companion alone"):
            sparse_companion(without_rows(dataset, rows), cfg, RunFolder(run_dir))
    phases.file.close()
    out: dict = {"log": [[round(t, 3), message] for t, message in log.lines]}
    for key in ("resident", "held", "need"):
        if key in checked:
            out[f"check_{key}_mib"] = round(checked[key] / 2**20)
    out["check_phases_mib"] = {k: round(v / 2**20) for k, v in checked.get("phases", {}).items()}
    if "what" in checked:
        out["check_what"] = checked["what"]
    if name == "train_hybrid":
        record = json.loads((run_dir / "metrics.json").read_text())
        out["final"] = {k: round(v, 4) for k, v in (record.get("final") or {}).items() if k in ("P@1", "P@5")}
        out["fusion"] = record.get("fusion")
    sparse = run_dir / "sparse"
    if sparse.is_dir():
        out["sparse_model_mib"] = round(sum(p.stat().st_size for p in sparse.rglob("*") if p.is_file()) / 2**20, 1)
        vocabulary = json.loads((sparse / "vectorizer.json").read_text(encoding="utf-8"))["vocabulary"]
        out["sparse_terms"] = len(vocabulary)
    return out


def _child(name: str, folder: Path, s: dict) -> None:
    start = time.perf_counter()
    figures = stage(name, folder, s)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(figures), flush=True)


def _anon_samples(child: subprocess.Popen) -> list[tuple[float, int]]:
    """The child's anonymous resident memory (``RssAnon``), ``(time, bytes)`` every 10 ms until it ends: its
    ``ru_maxrss`` counts the pages of memory-mapped files too, which the kernel takes back under pressure."""
    samples, status = [], Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("RssAnon:"):
                    samples.append((time.time(), int(line.split()[1]) * 1024))
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return samples


def _peak_anon(child: subprocess.Popen) -> int:
    """The child's peak anonymous resident memory (:func:`_anon_samples`)."""
    return max((anon for _, anon in _anon_samples(child)), default=0)


#: The product's estimate of each phase of a training run (:func:`vixml.planning.training_phases`).
_ESTIMATED = {
    "sparse companion": "training the sparse companion",
    "PRIME's start > refilling the query bank": "refilling the query bank",
    "PRIME's start": "PRIME's start",
    "training epoch": "a training step",
    "between epochs > clustering": "clustering the query bank",
    "between epochs > centroids": "refilling the query bank",
    "final bank refill": "refilling the query bank",
    "zero-shot evaluation": "evaluation",
    "dense test evaluation": "evaluation",
    "label embeddings": "evaluation",
    "fused test evaluation": "evaluation",
}


def _phase_table(samples: list[tuple[float, int]], marks: list[tuple[float, str]], checked: dict) -> list[dict]:
    """Each phase's own wall time and peak RssAnon (samples taken while it was the innermost one), in order of
    first appearance, with the product's estimate of the process at that phase: what it held when ``train()``
    checked its memory, what the run keeps (bank, model, companion) and the phase itself."""
    times = [t for t, _ in marks]
    rows: dict[str, dict] = {}
    for (t0, name), (t1, _) in zip(marks, marks[1:], strict=False):
        row = rows.setdefault(name or "start-up, writing the run", {"phase": name, "seconds": 0.0, "peak": 0})
        row["seconds"] += t1 - t0
    for t, anon in samples:
        i = bisect.bisect_right(times, t) - 1
        name = marks[i][1] if i >= 0 else ""
        row = rows.setdefault(name or "start-up, writing the run", {"phase": name, "seconds": 0.0, "peak": 0})
        row["peak"] = max(row["peak"], anon)
    table = []
    for label, row in rows.items():
        entry = {
            "phase": label,
            "seconds": round(row["seconds"], 1),
            "peak_anon_mib": round(row["peak"] / 2**20) if row["peak"] else None,
        }
        if "resident" in checked:
            key = next((v for k, v in _ESTIMATED.items() if row["phase"].startswith(k)), None)
            part = checked.get("phases_bytes", {}).get(key, 0) if key else 0
            entry["estimate_mib"] = round((checked["resident"] + checked["held"] + part) / 2**20)
            entry["estimated_as"] = key or "held"
        table.append(entry)
    return table


def run(
    quick: bool = False,
    scale: float | None = None,
    search_queries: int = 2000,
    folder: Path | None = None,
    text_labels: bool = False,
    stages: tuple[str, ...] = STAGES,
    test_queries: int = 20_000,
    batch_size: int = 2048,
    overrides: tuple[str, ...] = (),
    threads: int | None = None,
    texts: str = "random",
):
    from vixml.memory_fit import require

    scale = (0.05 if quick else 1.0) if scale is None else scale
    stages = tuple(stages) if "generate" in stages else ("generate", *stages)
    s = _sizes(scale, search_queries, test_queries)
    s.update(text_labels=text_labels, stages=stages, batch_size=batch_size, overrides=list(overrides), texts=texts)
    results: dict = {"scale": scale, **{k: v for k, v in s.items() if k not in ("labels_per_query", "stages")}}
    results["threads"] = threads
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name in stages:
            need, what = _estimate(name, Path(tmp), s)
            results[f"{name}_estimate_mib"] = round(need / 2**20)
            require(need, what, "Run it with a smaller --scale.", command=f"bench_scale {name}")
            log = Path(tmp) / f"{name}.stderr"
            env = dict(os.environ)
            if threads:  # torch (OpenMP), numba and omikuji (rayon) alike
                env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS")})
            with open(log, "w") as err:  # a file, not a pipe: a long stage's progress bars would fill a pipe
                child = subprocess.Popen(
                    [sys.executable, __file__, "--child", name, "--folder", tmp, "--sizes", json.dumps(s)],
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    env=env,
                )
                samples = _anon_samples(child)
                stdout, _ = child.communicate()
            results[f"{name}_peak_anon_mib"] = round(max((a for _, a in samples), default=0) / 2**20, 1)
            if child.returncode != 0:
                raise RuntimeError(f"bench_scale: stage {name} failed:\n{log.read_text()[-3000:]}")
            line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))
            figures = json.loads(line[len("RESULT ") :])
            if name in TRAIN_STAGES:
                marks = [tuple(json.loads(ln)) for ln in (Path(tmp) / f"{name}.phases.jsonl").read_text().splitlines()]
                checked = {
                    "resident": figures.get("check_resident_mib", 0) * 2**20,
                    "held": figures.get("check_held_mib", 0) * 2**20,
                    "phases_bytes": {k: v * 2**20 for k, v in figures.get("check_phases_mib", {}).items()},
                }
                if "check_resident_mib" not in figures:
                    checked = {}
                figures["phases"] = _phase_table(samples, marks, checked)
                for row in figures["phases"]:
                    print(f"bench_scale {name}: {row}", file=sys.stderr, flush=True)
            for key, value in figures.items():
                if value is not None:
                    results[f"{name}_{key}"] = value
            measured = (
                f"estimate {results[f'{name}_estimate_mib']} MiB, peak anon {results[f'{name}_peak_anon_mib']} MiB"
            )
            short = {k: v for k, v in figures.items() if k not in ("log", "phases")}
            print(f"bench_scale {name}: {measured}; {json.dumps(short)}", file=sys.stderr, flush=True)
    if "search_seconds" in results:
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
    parser.add_argument("--stages", default=",".join(STAGES), help=f"Comma-separated, of {STAGES + TRAIN_STAGES}.")
    parser.add_argument("--test-queries", type=int, default=20_000, help="Test queries of the training stages.")
    parser.add_argument("--batch", type=int, default=2048, help="Batch size of the training stages.")
    parser.add_argument("--set", action="append", default=[], help="key=value added to the training run's config.")
    parser.add_argument("--threads", type=int, default=None, help="Threads of the stages (default: all cores).")
    parser.add_argument(
        "--texts",
        choices=("random", "related"),
        default="random",
        help="Query texts of 4 uniform random words (default), or of words of their labels' texts (Zipf-like).",
    )
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.folder, json.loads(args.sizes))
    else:
        chosen = tuple(args.stages.split(","))
        unknown = [name for name in chosen if name not in STAGES + TRAIN_STAGES]
        if unknown:
            parser.error(f"unknown stages {unknown}")
        figures = run(
            args.quick,
            args.scale,
            args.search_queries,
            args.folder,
            args.text_labels,
            chosen,
            args.test_queries,
            args.batch,
            tuple(args.set),
            args.threads,
            args.texts,
        )
        print(json.dumps(figures, indent=2))
