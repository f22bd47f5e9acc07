"""The run folder type: its model swap never leaves a moment without a complete model."""

from __future__ import annotations

import pytest

from vixml.errors import DataError
from vixml.run_folder import MODEL_COMPLETE, RunFolder


def _writer(tag: str):
    def save(folder):
        folder.mkdir(parents=True)
        (folder / "weights").write_text(tag)
        (folder / MODEL_COMPLETE).write_text("{}")

    return save


def test_replace_model_swaps_in_the_new_model(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    run.replace_model(_writer("two"))
    assert (run.model_dir() / "weights").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_swap_interrupted_between_its_renames_is_read_and_recovered(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    run.model.rename(tmp_path / "model.old")  # killed after the first rename
    assert (run.model_dir() / "weights").read_text() == "one"  # a reader still finds a complete model
    run.clean_stale()
    assert (run.model / "weights").read_text() == "one"


def test_an_incomplete_new_model_is_refused(tmp_path):
    run = RunFolder(tmp_path)
    run.replace_model(_writer("one"))
    with pytest.raises(RuntimeError, match="incomplete"):
        run.replace_model(lambda folder: folder.mkdir())
    assert (run.model_dir() / "weights").read_text() == "one"


def test_require_finished_lists_every_missing_part(tmp_path):
    with pytest.raises(DataError) as err:
        RunFolder(tmp_path).require_finished()
    text = str(err.value)
    assert "config.yaml" in text and "model" in text and "label_embeddings.npy" in text
    with pytest.raises(DataError, match="not a folder"):
        RunFolder(tmp_path / "nope").require_finished()


# run.json exactly as `vixml train` has written it since 0.1.0 (a hybrid run, finished, resumed once)
OLD_RUN_JSON = {
    "data": {"path": "/data/wordnet", "fingerprint": "3f2a9c"},
    "precision": {"value": "fp32", "reason": "train.precision=fp32"},
    "finished": True,
    "segments": [
        {"started": "2026-12-07 10:00:00", "seconds": 61.2, "ranks": 1, "parallel": "one process", "backend": None},
        {"started": "2026-12-07 10:05:00", "seconds": 30.5, "ranks": 2, "parallel": "replicas", "backend": "gloo"},
    ],
    "seconds": 91.7,
    "sparse_seconds": 4.2,
}


def test_an_old_run_json_reads_back_through_run_state_and_is_written_the_same(tmp_path):
    import json

    run = RunFolder(tmp_path)
    old_text = json.dumps(OLD_RUN_JSON, indent=2) + "\n"  # how training/run.py wrote it
    run.state.write_text(old_text)
    state = run.read_state()
    assert (state.data_path, state.fingerprint, state.finished) == ("/data/wordnet", "3f2a9c", True)
    assert (state.precision["value"], state.seconds, state.sparse_seconds) == ("fp32", 91.7, 4.2)
    assert [s["parallel"] for s in state.segments] == ["one process", "replicas"]
    assert run.trained_on() == "/data/wordnet"
    run.write_state(state)
    assert run.state.read_text() == old_text  # the same bytes: old and new readers agree


def test_run_state_keeps_unknown_keys_and_reads_damage_as_empty(tmp_path):
    import json

    run = RunFolder(tmp_path)
    run.state.write_text(json.dumps({**OLD_RUN_JSON, "later_key": [1, 2]}))
    run.write_state(run.read_state())
    assert json.loads(run.state.read_text())["later_key"] == [1, 2]
    run.state.write_text("{not json")
    assert run.read_state().data_path is None and run.read_state().segments == []
    run.state.write_text(json.dumps({"data": "a string", "seconds": "soon"}))
    assert (run.read_state().data, run.read_state().seconds) == ({}, 0.0)


def test_a_run_state_times_its_segments():
    from vixml.run_folder import RunState

    state = RunState.from_json(OLD_RUN_JSON)
    state.begin("/data/other", "ffff", "bf16", "native")
    assert not state.finished and len(state.segments) == 3 and state.data_path == "/data/other"
    assert state.end() and state.seconds == round(61.2 + 30.5 + state.segments[-1]["seconds"], 1)
    assert not state.end()  # no segment running any more


def test_the_latest_checkpoint_is_the_one_the_pointer_names_when_complete(tmp_path):
    run = RunFolder(tmp_path)
    assert run.latest_checkpoint() is None
    (run.checkpoints / "ckpt-e0001-s000000008").mkdir(parents=True)
    (run.checkpoints / "latest").write_text("ckpt-e0001-s000000008\n")
    assert run.latest_checkpoint() is None  # no state.pt: not complete
    (run.checkpoints / "ckpt-e0001-s000000008" / "state.pt").write_bytes(b"x")
    assert run.latest_checkpoint() == run.checkpoints / "ckpt-e0001-s000000008"
