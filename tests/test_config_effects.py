"""Settings that have no effect are named (and logged by train) instead of silently ignored."""

from __future__ import annotations

from vixml.config import RunConfig, apply_overrides, ineffective_settings


def _said(*overrides: str) -> list[str]:
    return ineffective_settings(apply_overrides(RunConfig(), list(overrides)))


def test_defaults_and_a_consistent_recipe_say_nothing():
    assert _said() == []
    assert _said("loss.aggressive=true", "loss.temperature=0.2", "train.epochs=40", "mining.start_epoch=4") == []


def test_each_ineffective_setting_is_named_with_its_reason():
    assert _said("prototypes=null", "loss.weights.uv=2") == ["loss.weights.uv=2.0 has no effect without prototypes"]
    assert _said("loss.aggressive=false", "loss.temperature=0.2") == [
        "loss.temperature has no effect without loss.aggressive (it weights violating negatives)"
    ]
    assert _said("loss.name=infonce", "loss.num_negatives=5") == [
        "loss.num_negatives has no effect with loss.name=infonce (a triplet-loss setting)"
    ]
    assert _said("loss.name=infonce") == []  # the triplet defaults (aggressive, hinge_tie) are not the user's
    assert _said("prototypes=null", "loss.weights.i=2") == [
        "loss.weights.i has no effect without prototypes unless loss.symmetric (L_u alone otherwise)"
    ]
    assert _said("prototypes=null", "loss.symmetric=true", "loss.weights.i=2") == []
    assert _said("loss.symmetric=true") == ["loss.symmetric has no effect with prototypes (PRIME always trains L_i)"]
    assert _said("train.sampling=uniform", "train.propensity_A=0.5") == [
        "train.propensity_A has no effect with train.sampling=uniform"
    ]
    assert any("NGAME cluster batches never start" in s for s in _said("train.epochs=3", "mining.start_epoch=10"))
    assert any("model.prompt has no effect" in s for s in _said("model.kind=encoder", "model.prompt=['{text}']"))


def test_hinge_tie_counts_under_infonce_with_prototypes_only():
    assert _said("loss.name=infonce", "loss.hinge_tie=zero") == []  # PRIME's L_r has hinges under any base
    assert _said("prototypes=null", "loss.name=infonce", "loss.hinge_tie=zero") == [
        "loss.hinge_tie has no effect with loss.name=infonce (a triplet-loss setting)"
    ]
