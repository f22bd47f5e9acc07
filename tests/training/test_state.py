"""TrainState: what a checkpoint restores of the loop, as plain values, independent of the live object."""

from __future__ import annotations

import io

import torch

from vixml.training import TrainState


def test_state_dict_round_trips_through_a_weights_only_save_and_is_a_copy():
    state = TrainState(epoch=2, step=17, batch=3, sums={"loss": 1.5}, count=3, epoch_seconds=4.25)
    state.record({"epoch": 0, "step": 0, "P@1": 0.1})
    state.record({"epoch": 1, "step": 8, "train/loss": 0.9})
    saved = state.state_dict()
    state.update_last({"P@1": 0.5})  # the live history moves on; the saved one does not
    state.sums["loss"] = 9.0
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    restored = TrainState()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert (restored.epoch, restored.step, restored.batch, restored.count) == (2, 17, 3, 3)
    assert restored.sums == {"loss": 1.5} and restored.epoch_seconds == 4.25
    assert restored.history == [{"epoch": 0, "step": 0, "P@1": 0.1}, {"epoch": 1, "step": 8, "train/loss": 0.9}]
    assert not restored.fresh and TrainState().fresh
    restored.end_epoch()
    assert (restored.batch, restored.sums, restored.count, restored.epoch_seconds) == (0, {}, 0, 0.0)
