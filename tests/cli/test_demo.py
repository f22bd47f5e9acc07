"""The demo's sizing: its data cut and a config that says every setting deciding its time."""

from __future__ import annotations

import json

import pytest
import yaml

from vixml.cli.demo import DEMO_CONFIG, DEMO_DATA, _resource, dense_budget
from vixml.data import load_dataset, prepare_dataset
from vixml.data.subset import first_queries as _subset


def test_subset_cuts_queries_rows_and_filters_together_and_keeps_every_label(tmp_path):
    src = _resource(DEMO_DATA)
    staging = _subset(src, tmp_path / DEMO_DATA, {"trn": 50, "tst": 70})
    full_test = (src / "tst.raw.txt").read_text(encoding="utf-8").splitlines()
    assert (staging / "tst.raw.txt").read_text(encoding="utf-8").splitlines() == full_test[:70]
    header, *rows = (staging / "tst_X_Y.txt").read_text(encoding="utf-8").splitlines()
    assert header == "70 1162" and rows == (src / "tst_X_Y.txt").read_text().splitlines()[1:71]
    pairs = (staging / "filter_labels_test.txt").read_text().split("\n")
    expected = [p for p in (src / "filter_labels_test.txt").read_text().splitlines() if int(p.split()[0]) < 70]
    assert [p for p in pairs if p] == expected and expected  # some pairs of the first 70 rows, none beyond
    data = load_dataset(prepare_dataset(staging, tmp_path / "data"), images=False)
    assert (data.n_train, data.n_test, data.n_labels) == (50, 70, 1162)


def test_subset_of_zero_keeps_a_split_whole(tmp_path):
    staging = _subset(_resource(DEMO_DATA), tmp_path / DEMO_DATA, {"trn": 0, "tst": 10})
    assert len((staging / "trn.raw.txt").read_text(encoding="utf-8").splitlines()) == 7587


def test_demo_config_writes_out_every_setting_that_decides_its_time():
    """The empty-config defaults follow the paper's long recipe: the demo must not inherit them."""
    cfg = yaml.safe_load(_resource(DEMO_CONFIG).read_text(encoding="utf-8"))
    needed = {
        "data": {"max_length", "label_max_length"},
        "mining": {"cluster_size", "double_at", "start_epoch", "update_every"},
        "loss": {"name", "num_negatives", "aggressive", "symmetric", "hinge_tie"},
        "train": {"epochs", "batch_size", "lr", "warmup_steps", "schedule", "precision", "eval_every"},
        "eval": {"topk", "encode_batch_size"},
    }
    for section, keys in needed.items():
        assert keys <= set(cfg[section]), (section, keys - set(cfg[section]))
    assert cfg["train"]["precision"] == "auto"  # bf16 only where the CPU runs it natively
    assert "prototypes" in cfg and cfg["model"]["lora"] is None and cfg["images"] is None  # off, said so


@pytest.mark.slow
def test_the_demo_shows_every_part_and_the_fused_row_is_the_best(tmp_path, capsys, monkeypatch):
    """On a stand-in of the demo (the offline MiniLM, 1,500 training and 300 test queries, a budget of a few
    dense steps): the rows in their order, the fused row best on P@1, the cap kept in the run's config."""
    import vixml.cli.demo as demo_module
    from support_models import minilm_path
    from vixml.cli.main import main
    from vixml.config import load_config

    minilm_path()  # skips without the offline model
    monkeypatch.setitem(demo_module.BUDGET, False, (4.0, 32.0))  # the suite pins "no native bf16": 4 steps
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-queries", "1500", "--test-queries", "300", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    names = ["zero-shot encoder", "sparse companion", "trained dual encoder", "fused", "fused + R"]
    assert list(rows) == names
    assert all(set(row) == {"P@1", "P@5", "PSP@5", "seconds"} for row in rows.values())
    assert rows["fused"]["P@1"] > max(rows[n]["P@1"] for n in names[:3]), rows
    assert load_config(out / "run" / "config.yaml").train.max_steps == dense_budget(False, 32)[0] == 4
    assert main(args) == 0  # a finished demo shows its results again, the +R row from its cache
    assert json.loads(capsys.readouterr().out)["rows"] == rows
