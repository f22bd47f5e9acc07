"""``vixml report``: one self-contained HTML page about one or several runs (plots embedded as base64 PNG).

Sections: a side-by-side table of the headline test metrics (with several runs), training curves, the
final metrics table, P@k and PSP@k by label-frequency decile (:mod:`vixml.metrics.deciles`, the XMC
head/tail analysis) and sample test predictions with hits marked. Everything comes from the run folders
(``history.json``, ``metrics.json``, ``predictions_tst.npz``, ``label_texts.txt``) and the dataset named
in ``metrics.json`` (or given); a part whose inputs are missing is replaced by a note saying what is missing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vixml.atomic import atomic_open
from vixml.reports.tables import FAMILY_ORDER, HEADLINE_METRICS, split_metric_name
from vixml.run_folder import RunFolder

__all__ = ["build_report", "write_report", "RunSummary"]

logger = logging.getLogger(__name__)

DECILE_K = 5
SAMPLES = 8


@dataclass
class RunSummary:
    """What the report shows of one run."""

    name: str
    path: Path
    model: str = ""
    history: list[dict] = field(default_factory=list)
    final: dict | None = None
    zero_shot: dict | None = None
    sources: dict | None = None  # a hybrid run's test metrics per source (dense, sparse, fused)
    fusion: dict | None = None  # its fusion weight and how many held-out queries tuned it
    deciles: dict | None = None
    samples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # run.json's "data": the dataset's path and fingerprint


def _load_run(path: Path, data: Path | None, name: str) -> RunSummary:
    run = RunFolder(path)
    summary = RunSummary(name=name, path=path)
    try:
        summary.model = str(run.load_config().model.name_or_path)
    except Exception as exc:  # noqa: BLE001 - the report shows what it can
        summary.notes.append(f"no readable config: {exc}")
    if run.history_json.is_file():
        summary.history = json.loads(run.history_json.read_text(encoding="utf-8"))
    metrics = json.loads(run.metrics.read_text(encoding="utf-8")) if run.metrics.is_file() else {}
    summary.final, summary.zero_shot = metrics.get("final"), metrics.get("zero_shot")
    summary.sources, summary.fusion = metrics.get("sources"), metrics.get("fusion")
    summary.data = run.read_state().data
    if summary.final is None:
        summary.notes.append("no final test metrics (the run has not finished, or its dataset has no test split)")
    data = data or _recorded_data(run, metrics)
    if data is None or not data.is_dir():
        summary.notes.append("decile analysis and samples need the run's dataset: pass --data DIR")
        return summary
    if not run.predictions.is_file():
        summary.notes.append(f"no {run.predictions.name}: no decile analysis or samples")
        return summary
    _add_analysis(summary, run, data)
    return summary


def _recorded_data(run: RunFolder, metrics: dict) -> Path | None:
    """The dataset folder the run was trained on (``run.json``'s ``data.path``)."""
    recorded = run.read_state().data_path
    return Path(recorded) if recorded else None


def _add_analysis(summary: RunSummary, run: RunFolder, data: Path) -> None:
    from vixml.config import EvalConfig
    from vixml.data import load_dataset, read_label_matrix, read_texts
    from vixml.metrics import filter_predictions, resolve_propensity
    from vixml.metrics.deciles import metrics_by_decile, ranked_topk

    dataset = load_dataset(data, images=False)
    pred = read_label_matrix(run.predictions)
    if dataset.tst_Y is None or pred.shape != dataset.tst_Y.shape:
        summary.notes.append(f"predictions {pred.shape} do not match the test labels of {data}")
        return
    try:
        ec = run.load_config().eval
    except Exception:  # noqa: BLE001
        ec = EvalConfig()
    if ec.use_filter and dataset.filter_tst is not None and len(dataset.filter_tst):
        pred = filter_predictions(pred, dataset.filter_tst)
    A, B = resolve_propensity(ec.A, ec.B, dataset.path)
    summary.deciles = metrics_by_decile(dataset.tst_Y, pred, dataset.trn_Y, k=DECILE_K, A=A, B=B)
    label_texts = read_texts(run.label_texts, layout="plain") if run.label_texts.is_file() else dataset.lbl_texts
    label_ids = _own_ids(run.label_ids, dataset, "lbl", dataset.n_labels)
    query_ids = _own_ids(run.test_ids, dataset, "tst", dataset.n_test)
    rows = np.linspace(0, dataset.n_test - 1, num=min(SAMPLES, dataset.n_test), dtype=np.int64)
    top = ranked_topk(pred[rows], DECILE_K)
    for row, labels in zip(rows.tolist(), top, strict=True):
        truth = set(dataset.tst_Y[row].indices.tolist())
        shown = [
            (label_texts[int(j)], int(j) in truth, label_ids[int(j)] if label_ids is not None else str(int(j)))
            for j in labels
            if j >= 0
        ]
        summary.samples.append(
            {
                "query": dataset.tst_texts[row],
                "query_id": query_ids[row] if query_ids is not None else None,
                "predicted": shown,
                "true": len(truth),
            }
        )


def _own_ids(kept: Path, dataset, split: str, count: int):
    """The own ids of a split's rows: the run's copy (what its predictions were made for), else the dataset's."""
    from vixml.data import read_texts

    ids = read_texts(kept, layout="plain") if kept.is_file() else dataset.ids(split)
    return ids if ids is not None and len(ids) == count else None


# ---------------------------------------------------------------------------------------------- plots
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves(runs: Sequence[RunSummary]) -> str | None:
    plt = _pyplot()
    if not any(r.history for r in runs):
        return None
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in runs:
        losses = [(h["epoch"], h["train/loss"]) for h in r.history if "train/loss" in h]
        if losses:
            ax_loss.plot(*zip(*losses, strict=True), marker=".", label=r.name)
        for key, style in (("P@1", "-"), ("PSP@1", "--")):
            points = [(h["epoch"], 100 * h[key]) for h in r.history if key in h]
            if points:
                ax_metric.plot(*zip(*points, strict=True), style, marker="o", label=f"{r.name} {key}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_metric.set(xlabel="epoch", ylabel="%", title="test P@1 and PSP@1 (epoch 0 = zero-shot)")
    from vixml.reports.plots import whole_epochs

    for ax in (ax_loss, ax_metric):
        whole_epochs(ax)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _decile_plot(runs: Sequence[RunSummary]) -> str | None:
    plt = _pyplot()
    shown = [r for r in runs if r.deciles]
    if not shown:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(shown)
    for i, r in enumerate(shown):
        bins = r.deciles["bins"]
        x = np.arange(len(bins)) + (i - (len(shown) - 1) / 2) * width
        for ax, key in zip(axes, (f"P@{DECILE_K}", f"PSP@{DECILE_K}"), strict=True):
            ax.bar(x, [100 * b[key] for b in bins], width, label=r.name)
    for ax, key in zip(axes, (f"P@{DECILE_K}", f"PSP@{DECILE_K}"), strict=True):
        ax.set(xlabel="label-frequency decile (1 = head, 10 = tail)", ylabel="% contributed", title=key)
        ax.set_xticks(range(10), [str(b) for b in range(1, 11)])
        ax.grid(alpha=0.3, axis="y")
        if len(shown) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------- html
def _e(value) -> str:
    return html.escape(str(value))


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _different_data(runs: Sequence[RunSummary]) -> str:
    """A warning when the runs were trained on different datasets (their metrics are then not comparable)."""
    prints = {r.data.get("fingerprint") for r in runs}
    if len(prints) < 2:
        return ""
    each = "; ".join(
        f"{r.name}: {r.data.get('path', 'unknown')} ({str(r.data.get('fingerprint') or 'no fingerprint')[:12]})"
        for r in runs
    )
    logger.warning("the compared runs were trained on different datasets (%s): no best is marked", each)
    return (
        "<p class='warn'>These runs were trained on different datasets, so their metrics are not comparable and "
        f"no best is marked: {_e(each)}.</p>"
    )


def _comparison(runs: Sequence[RunSummary], mark_best: bool = True) -> str:
    keys = [k for k in HEADLINE_METRICS if any(r.final and k in r.final for r in runs)]
    head = "".join(f"<th>{_e(r.name)}</th>" for r in runs)
    rows = []
    for key in keys:
        values = [r.final.get(key) if r.final else None for r in runs]
        best = max((v for v in values if v is not None), default=None) if mark_best else None
        cells = "".join(
            f"<td class='num{' best' if v is not None and v == best and len(runs) > 1 else ''}'>{_pct(v)}</td>"
            for v in values
        )
        rows.append(f"<tr><th>{_e(key)}</th>{cells}</tr>")
    return f"<table><tr><th>metric (%)</th>{head}</tr>{''.join(rows)}</table>"


def _metrics_table(run: RunSummary) -> str:
    trained = run.sources or {"trained": run.final}
    columns = {name: m for name, m in (("zero-shot", run.zero_shot), *trained.items()) if m}
    if not columns:
        return ""
    ks = sorted({k for m in columns.values() for k in (split_metric_name(n)[1] for n in m) if k is not None})
    families = [f for f in FAMILY_ORDER if any(f"{f}@{k}" in m for m in columns.values() for k in ks)]
    # one row per metric and model, one column per k: as narrow with four sources as with one (it wraps at 1280 px)
    head = "<th>model</th>" + "".join(f"<th class='num'>@{k}</th>" for k in ks)
    rows = []
    for family in families:
        for i, (name, m) in enumerate(columns.items()):
            label = f"<th rowspan={len(columns)}>{family}</th>" if i == 0 else ""
            cells = "".join(f"<td class='num'>{_pct(m.get(f'{family}@{k}'))}</td>" for k in ks)
            rows.append(f"<tr>{label}<td>{_e(name)}</td>{cells}</tr>")
    for i, (name, m) in enumerate((n, m) for n, m in columns.items() if "MRR" in m):
        label = f"<th rowspan={sum('MRR' in m for m in columns.values())}>MRR</th>" if i == 0 else ""
        rows.append(f"<tr>{label}<td>{_e(name)}</td><td class='num'>{_pct(m.get('MRR'))}</td></tr>")
    note = ""
    if run.fusion:
        w = run.fusion["dense_weight"]
        tuned = f"tuned on {run.fusion['tuned_on']:,} held-out queries" if run.fusion.get("tuned_on") else "as set"
        note = (
            f"<p>Fused = {w:.2f} x dense + {1 - w:.2f} x sparse, {tuned}; "
            "the run's predictions are the fused ones.</p>"
        )
        if run.fusion.get("plus_r"):
            weights = ", ".join(f"{name} {w:.2f}" for name, w in run.fusion["plus_r"].items())
            note += f"<p>With +R, a third source: {_e(weights)}.</p>"
    return f"<table><tr><th>metric (%)</th>{head}</tr>{''.join(rows)}</table>{note}"


def _decile_table(run: RunSummary) -> str:
    if not run.deciles:
        return ""
    k = run.deciles["k"]
    rows = "".join(
        f"<tr><td>{b['bin']}</td><td class='num'>{b['labels']}</td>"
        f"<td class='num'>{b['min_freq']}-{b['max_freq']}</td>"
        f"<td class='num'>{_pct(b[f'P@{k}'])}</td><td class='num'>{_pct(b[f'PSP@{k}'])}</td></tr>"
        for b in run.deciles["bins"]
    )
    total = f"<tr><th>all</th><td></td><td></td><th class='num'>{_pct(run.deciles[f'P@{k}'])}</th>"
    total += f"<th class='num'>{_pct(run.deciles[f'PSP@{k}'])}</th></tr>"
    return (
        f"<table class='deciles'><tr><th>decile</th><th>labels</th><th>train freq.</th><th>P@{k}</th>"
        f"<th>PSP@{k}</th></tr>{rows}{total}</table>"
    )


def _samples(run: RunSummary) -> str:
    if not run.samples:
        return ""
    items = []
    for s in run.samples:
        labels = "".join(
            f"<li class='{'hit' if hit else 'miss'}'>{'&#10003;' if hit else '&#10007;'} {_e(text)} "
            f"<span class='id'>#{_e(key)}</span></li>"
            for text, hit, key in s["predicted"]
        )
        qid = f" <span class='id'>{_e(s['query_id'])}</span>" if s.get("query_id") is not None else ""
        items.append(f"<div class='sample'><div class='q'>{_e(s['query'])}{qid}</div><ol>{labels}</ol></div>")
    return f"<h3>Sample test predictions (top-{DECILE_K}; &#10003; = a true label)</h3>{''.join(items)}"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em;overflow-wrap:anywhere}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;max-width:100%}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;overflow-wrap:anywhere}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold;background:#eef7ee}
img{max-width:100%}.note{color:#a55}.warn{color:#8a4b00;background:#fff4e0;padding:.5em;border-radius:4px}
.sample{display:inline-block;vertical-align:top;width:31%;margin:.4em;box-sizing:border-box;
padding:.5em;border:1px solid #eee;border-radius:6px;overflow-wrap:anywhere}.sample .q{font-weight:600}
.sample ol{margin:.3em 0;padding-left:1.2em}.sample .id{color:#888;font-size:.85em;font-weight:400;
overflow-wrap:anywhere}
li.hit{color:#17702b}li.miss{color:#777}.path{color:#666;font-family:monospace;overflow-wrap:anywhere}
"""


def build_report(runs: Sequence[str | Path], *, data: str | Path | None = None, title: str | None = None) -> str:
    """The HTML text of the report on ``runs`` (see the module doc).

    Args:
        runs: run folders (one or more).
        data: the dataset folder for the decile analysis and samples (default: the one each run recorded).
        title: the page title.
    """
    paths = [Path(r) for r in runs]
    names = _names(paths)
    summaries = [_load_run(p, Path(data) if data else None, n) for p, n in zip(paths, names, strict=True)]
    parts = [f"<h1>{_e(title or 'vixml report: ' + ', '.join(names))}</h1>"]
    if len(summaries) > 1:
        warning = _different_data(summaries)
        parts += ["<h2>Comparison (final test metrics)</h2>", warning, _comparison(summaries, not warning)]
    curves = _curves(summaries)
    if curves:
        parts += ["<h2>Training curves</h2>", f"<img alt='training curves' src='{curves}'>"]
    deciles = _decile_plot(summaries)
    if deciles:
        parts += [
            f"<h2>P@{DECILE_K} and PSP@{DECILE_K} by label-frequency decile</h2>",
            "<p>Labels sorted by training frequency and cut into ten equal groups; each bar is the group's "
            "contribution to the metric (the bars add up to it).</p>",
            f"<img alt='metrics by decile' src='{deciles}'>",
        ]
    for s in summaries:
        parts.append(f"<h2>{_e(s.name)}</h2><p class='path'>{_e(s.path)} &middot; model {_e(s.model)}</p>")
        parts += [f"<p class='note'>{_e(n)}</p>" for n in s.notes]
        parts += [_metrics_table(s), _decile_table(s), _samples(s)]
    body = "\n".join(p for p in parts if p)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title or 'vixml report')}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_report(runs: Sequence[str | Path], out: str | Path, **kwargs) -> Path:
    """Write :func:`build_report` to ``out`` atomically."""
    out = Path(out)
    text = build_report(runs, **kwargs)
    with atomic_open(out) as fh:
        fh.write(text)
    return out


def _names(paths: Sequence[Path]) -> list[str]:
    """Short distinct names: the folder name, with its parent when two runs share it."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    return names
