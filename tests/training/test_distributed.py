"""Training on several ranks (torchrun, gloo on CPU) is training on one process with the global batch.

Two spawned gloo ranks each encode half of every batch; the embeddings are all-gathered with gradients, so
the loss, its parts, the gradients and the query bank equal those of one process on the whole batch.
"""

from __future__ import annotations

import pytest
import torch

from support_distributed import one_step, spawn

pytestmark = pytest.mark.slow  # each test spawns gloo ranks that import torch and transformers


@pytest.fixture
def config(train_config, tiny_bert):
    return lambda *extra: train_config(tiny_bert, *extra)


@pytest.mark.parametrize("prime", [False, True], ids=["plain", "prime"])
def test_two_ranks_step_equals_one_process(tmp_path, planted_data, config, prime):
    extra = ["prototypes.lpn_heads=4", "prototypes.lpn_ffn=64"] if prime else ["prototypes=null"]
    cfg = config("train.batch_size=31", *extra)  # odd: the two shares differ in size
    single = one_step(cfg, planted_data, tmp_path / "one", None)
    spawn(one_step, 2, cfg, planted_data, tmp_path / "two", tmp_path / "two.pt")
    double = torch.load(tmp_path / "two.pt")
    assert single["parts"].keys() == double["parts"].keys()
    for name, value in single["parts"].items():
        assert double["parts"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert single["grads"].keys() == double["grads"].keys()
    assert len(single["grads"]) > 10
    for name, grad in single["grads"].items():
        torch.testing.assert_close(double["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(double["bank"], single["bank"], rtol=1e-5, atol=1e-6)
