"""`vixml report` at 1280 px in headless Chromium: nothing wider than the window (element geometry, not by eye),
whole epochs on the curves, and a warning instead of a "best" when the compared runs used different datasets."""

from __future__ import annotations

import json
import shutil

from support_browser import chromium
from vixml.reports.html import build_report

WIDTH = 1280


def _wide_run(cli_run, tmp_path, name: str):
    """A copy of the run with four sources at six k values and a long unbroken folder name: the widest tables."""
    run = shutil.copytree(cli_run, tmp_path / name)
    metrics = json.loads((run / "metrics.json").read_text())
    final = dict(metrics["final"])
    for k in (1, 3, 5, 10, 20, 100):
        for family in ("P", "nDCG", "PSP", "PSnDCG", "R"):
            final.setdefault(f"{family}@{k}", 0.5)
    metrics["final"] = final
    metrics["sources"] = {source: final for source in ("dense", "sparse", "fused", "fused+R")}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_the_report_has_no_horizontal_overflow_at_1280_px(cli_run, tmp_path):
    runs = [_wide_run(cli_run, tmp_path, "run-" + "x" * 150), _wide_run(cli_run, tmp_path, "second-run")]
    page = tmp_path / "report.html"
    page.write_text(build_report(runs))
    driver = chromium()
    try:
        driver.set_window_size(WIDTH, 1000)
        driver.get(page.as_uri())
        inner = driver.execute_script("return window.innerWidth")
        assert inner <= WIDTH
        overflow = driver.execute_script(
            "const w = window.innerWidth; return [...document.querySelectorAll('body *')]"
            ".map(e => [e.tagName + '.' + e.className, Math.round(e.getBoundingClientRect().right), e.scrollWidth,"
            " e.clientWidth]).filter(([_, right, scroll, client]) => right > w || (client && scroll > client + 1));"
        )
        assert overflow == [], overflow
        assert driver.execute_script("return document.documentElement.scrollWidth") <= inner
    finally:
        driver.quit()


def test_curves_have_whole_epochs(cli_run, monkeypatch):
    from vixml.reports import html

    seen = []
    real = html._png

    def capture(fig):
        seen.extend(fig.axes)
        return real(fig)

    monkeypatch.setattr(html, "_png", capture)
    history = [{"epoch": 0, "P@1": 0.2}, {"epoch": 1, "train/loss": 1.0, "P@1": 0.4}, {"epoch": 2, "P@1": 0.5}]
    html._curves([html.RunSummary(name="r", path=cli_run, history=history)])
    for ax in seen[:2]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_runs_on_different_datasets_are_compared_with_a_warning_and_no_best(cli_run, tmp_path, caplog):
    other = shutil.copytree(cli_run, tmp_path / "other")
    state = json.loads((other / "run.json").read_text())
    state["data"] = {"path": "/elsewhere/data", "fingerprint": "f" * 64}
    (other / "run.json").write_text(json.dumps(state))
    page = build_report([cli_run, other])
    assert "trained on different datasets, so their metrics are not comparable and no best is marked" in page
    assert "/elsewhere/data" in page and "td class='num best'" not in page
    assert "different datasets" in caplog.text
    same = build_report([cli_run, shutil.copytree(cli_run, tmp_path / "same")])
    assert "different datasets" not in same and "num best" in same
