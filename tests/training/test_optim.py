"""The optimiser's parameter groups: the model names each parameter's learning rate (docs/method.md 4)."""

from __future__ import annotations

import torch

from vixml.config import RunConfig, apply_overrides
from vixml.models import build_dual_encoder
from vixml.training.optim import build_optimizer, no_decay


def test_heads_train_at_their_own_rates_and_every_group_is_one_rate_and_decay(tiny_bert):
    cfg = apply_overrides(
        RunConfig(),
        [f"model.name_or_path={tiny_bert}", "images.num_images=2", "prototypes.lr=7e-4", "images.projection_lr=3e-4"],
    )
    cfg = apply_overrides(cfg, ["prototypes.lpn_heads=2", "prototypes.lpn_ffn=16", "train.lr=1e-5"])
    model = build_dual_encoder(cfg, num_labels=24, vision_dim=8, device="cpu")
    rates = model.learning_rates(1e-5, prototypes=7e-4, image_projection=3e-4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(rates) == trainable
    for name, lr in rates.items():
        head = {"prototypes": 7e-4, "image_projection": 3e-4}.get(name.split(".")[0])
        assert lr == (head or 1e-5), name
    assert {lr for n, lr in rates.items() if n.startswith("backbone.")} == {1e-5}
    assert model.learning_rates(1e-5) == dict.fromkeys(trainable, 1e-5)  # no head rates: one rate for all

    optimizer = build_optimizer(model, learning_rates=rates, weight_decay=0.01, eps=1e-8)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [(g["lr"], g["weight_decay"], [names[id(p)] for p in g["params"]]) for g in optimizer.param_groups]
    assert [(lr, wd) for lr, wd, _ in groups] == sorted(
        {(lr, wd) for lr, wd, _ in groups}, key=lambda k: (k[0], -k[1])
    )
    for lr, wd, members in groups:
        params = dict(model.named_parameters())
        assert all(rates[n] == lr and (wd == 0.0) == no_decay(n, params[n]) for n in members)
    assert sum(len(m) for *_, m in groups) == len(trainable)
    assert isinstance(optimizer, torch.optim.AdamW)
