"""`vixml report`: one self-contained HTML page with curves, metrics, deciles, samples and a comparison."""

from __future__ import annotations

import json
import re

import pytest

from vixml.cli.main import main
from vixml.data import load_dataset, read_label_matrix
from vixml.metrics import filter_predictions
from vixml.metrics.deciles import metrics_by_decile
from vixml.reports.html import build_report


def test_report_of_two_runs(tmp_path, prime_run, plain_run, serve_data, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(prime_run), str(plain_run), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    page = out.read_text()
    assert "Comparison (final test metrics)" in page
    images = re.findall(r"src='([^']*)'", page)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    for run in (prime_run, plain_run):
        final = json.loads((run / "metrics.json").read_text())["final"]
        assert f"{100 * final['P@1']:.2f}" in page
    ds = load_dataset(serve_data)
    pred = filter_predictions(read_label_matrix(prime_run / "predictions_tst.npz"), ds.filter_tst)
    deciles = metrics_by_decile(ds.tst_Y, pred, ds.trn_Y, k=5, A=0.55, B=1.5)
    final = json.loads((prime_run / "metrics.json").read_text())["final"]
    assert deciles["P@5"] == pytest.approx(final["P@5"], abs=1e-6)  # the run's own metric, split by decile
    assert f"{100 * deciles['bins'][0]['P@5']:.2f}" in page
    assert page.count("class='sample'") == 16 and "class='hit'" in page


def test_report_without_the_dataset_says_what_is_missing(tmp_path, prime_run):
    import shutil

    run = shutil.copytree(prime_run, tmp_path / "run")
    state = json.loads((run / "run.json").read_text())
    state.pop("data")
    (run / "run.json").write_text(json.dumps(state))
    page = build_report([run])
    assert "pass --data DIR" in page and "Training curves" in page
    assert "by label-frequency decile" not in page and "Sample test predictions" not in page
