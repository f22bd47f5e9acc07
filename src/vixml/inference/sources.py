"""What each part of a finished run brings: the test metrics of the zero-shot encoder, the sparse companion,
the trained dual encoder, their fusion and the fusion with +R, each with the time it took (the demo's table)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["source_rows"]


def source_rows(run: Path, data: Path, keys: tuple[str, ...] = ("P@1", "P@5", "PSP@5")) -> dict[str, dict]:
    """Each row of the demo's table: its P@1, P@5, PSP@5 (fractions) and the seconds it took.

    The fused row with +R (training queries voting for their labels) is the run's own when it measured one
    (a hybrid run with ``eval.augment``), else computed here once (it embeds the training queries) and kept."""
    import json
    import time

    from vixml.atomic import atomic_open
    from vixml.config import load_config
    from vixml.data import load_dataset
    from vixml.inference import Predictor
    from vixml.metrics.evaluation import evaluate_predictions
    from vixml.run_folder import RunFolder

    folder = RunFolder(run)
    metrics = json.loads(folder.metrics.read_text())
    history = json.loads(folder.history_json.read_text())
    state = folder.read_state()
    sources = metrics.get("sources") or {"dense": metrics["final"]}
    zero_shot_s = history[0].get("seconds", 0.0) if history and history[0]["epoch"] == 0 else 0.0
    dense_s = sum(h.get("seconds", 0.0) for h in history if h["epoch"] > 0)
    sparse_s = state.sparse_seconds or 0.0
    fusion_s = (metrics.get("fusion") or {}).get("seconds", 0.0)
    times = {
        "zero-shot encoder": zero_shot_s,
        "sparse companion": sparse_s,
        "trained dual encoder": dense_s,
        "fused": sparse_s + dense_s + fusion_s,
    }
    picked = {"zero-shot encoder": metrics.get("zero_shot"), "sparse companion": sources.get("sparse")}
    picked |= {"trained dual encoder": sources.get("dense"), "fused": sources.get("fused")}
    rows = {name: {**{k: m[k] for k in keys}, "seconds": round(times[name], 1)} for name, m in picked.items() if m}
    cache = folder.plus_r_row
    if sources.get("fused + R"):  # a hybrid run with eval.augment measured it at the end of training
        rows["fused + R"] = {**{k: sources["fused + R"][k] for k in keys}, "seconds": rows["fused"]["seconds"]}
    elif "fused" in rows and cache.is_file() and json.loads(cache.read_text())["run_seconds"] == state.seconds:
        rows["fused + R"] = json.loads(cache.read_text())["row"]
    elif "fused" in rows:
        started = time.perf_counter()
        predictions = Predictor.load(run).predict_dataset(data, k=100, augment=True)
        dataset = load_dataset(data, images=False)
        with_r = evaluate_predictions(predictions, dataset, load_config(folder.config).eval)
        seconds = rows["fused"]["seconds"] + time.perf_counter() - started
        rows["fused + R"] = {**{k: with_r[k] for k in keys}, "seconds": round(seconds, 1)}
        with atomic_open(cache) as fh:
            fh.write(json.dumps({"run_seconds": state.seconds, "row": rows["fused + R"]}) + "\n")
    return rows
