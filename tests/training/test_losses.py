"""Behaviour of the ranking losses: hand-computed values, masks, gradients, determinism, a learning check."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vixml.config import LossWeights
from vixml.errors import ConfigError
from vixml.training.losses import (
    LOSSES,
    dual_encoder_loss,
    get_loss,
    infonce_loss,
    prime_loss,
    prime_regularizer,
    triplet_loss,
)

FIXED = {"dynamic_margin": False, "margin_max": 0.3}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def t(rows: list[list[float]], **kw) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32, **kw)


# Single-positive rows: no randomness in the positive pick, so values are exact.
S_2x3 = [[0.5, 0.6, 0.1], [0.05, 0.4, 0.6]]
Y_2x3 = [[1, 0, 0], [0, 1, 0]]


# --------------------------------------------------------------------------------------------- triplet
def test_triplet_fixed_margin_by_hand():
    # row 0: s_p=0.5; 0.6-0.5+0.3=0.4, 0.1-0.5+0.3<0 -> 0.4 ; row 1: s_p=0.4; 0.6-0.4+0.3=0.5, 0.05 -> 0
    loss = triplet_loss(t(S_2x3), t(Y_2x3), generator=gen(), **FIXED)
    assert loss.item() == pytest.approx((0.4 + 0.5) / 2, abs=1e-6)


def test_triplet_dynamic_margin_by_hand():
    # row 0: |0.5-0.6|=0.1 -> m=0.1: 0.6-0.5+0.1=0.2 ; |0.5-0.1|=0.4 -> m=0.3: 0.1-0.5+0.3<0
    # row 1: |0.4-0.6|=0.2 -> m=0.2: 0.6-0.4+0.2=0.4 ; |0.4-0.05|=0.35 -> m=0.3: 0.05-0.4+0.3<0
    loss = triplet_loss(t(S_2x3), t(Y_2x3), margin_min=0.1, margin_max=0.3, generator=gen())
    assert loss.item() == pytest.approx((0.2 + 0.4) / 2, abs=1e-6)


def test_triplet_dynamic_margin_small_gap_uses_margin_min():
    # correctly ordered but only 0.05 apart: m = clamp(0.05) = 0.1 -> 0.45 - 0.5 + 0.1 = 0.05
    loss = triplet_loss(t([[0.5, 0.45]]), t([[1, 0]]), generator=gen())
    assert loss.item() == pytest.approx(0.05, abs=1e-6)


def test_triplet_accepts_bool_and_graded_targets():
    y_bool = torch.tensor(Y_2x3, dtype=torch.bool)
    y_graded = t(Y_2x3) * 0.7
    ref = triplet_loss(t(S_2x3), t(Y_2x3), generator=gen(), **FIXED)
    assert triplet_loss(t(S_2x3), y_bool, generator=gen(), **FIXED).item() == pytest.approx(ref.item())
    assert triplet_loss(t(S_2x3), y_graded, generator=gen(), **FIXED).item() == pytest.approx(ref.item())


def test_triplet_only_non_positives_are_negatives():
    # positives 0.2 and 0.9, negative 0.1. Pick 0.2: 0.1-0.2+0.3 = 0.2 ; pick 0.9: 0. If the other
    # positive (0.9) were used as a negative of the 0.2 pick, 0.9-0.2+0.3 = 1.0 would be added.
    seen = set()
    for seed in range(40):
        value = triplet_loss(t([[0.2, 0.9, 0.1]]), t([[1, 1, 0]]), generator=gen(seed), **FIXED).item()
        assert min(abs(value - 0.2), abs(value - 0.0)) < 1e-6, value
        seen.add(round(value, 4))
    assert seen == {0.0, 0.2}


def test_triplet_multi_positive_pick_is_uniform():
    # positives 0.1, 0.2, 0.3, one negative 0.6, k=1, fixed m=0.3 -> losses 0.8, 0.7, 0.6 identify the pick
    scores, targets = t([[0.1, 0.2, 0.3, 0.6]]), t([[1, 1, 1, 0]])
    g = gen(123)
    counts = {0.8: 0, 0.7: 0, 0.6: 0}
    for _ in range(900):
        value = round(triplet_loss(scores, targets, num_negatives=1, generator=g, **FIXED).item(), 4)
        counts[value] += 1
    for c in counts.values():
        assert 230 < c < 370, counts  # 300 expected each; ~ +-4.6 sigma


def test_triplet_rows_without_positive_are_excluded():
    scores = t(S_2x3 + [[0.9, 0.9, 0.9]])
    targets = t(Y_2x3 + [[0, 0, 0]])
    loss = triplet_loss(scores, targets, generator=gen(), **FIXED)
    assert loss.item() == pytest.approx(0.45, abs=1e-6)  # not 0.9 / 3


def test_triplet_no_positive_anywhere_is_differentiable_zero():
    scores = t([[0.3, 0.8], [0.1, 0.2]], requires_grad=True)
    loss = triplet_loss(scores, torch.zeros(2, 2), generator=gen())
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(scores.grad, torch.zeros(2, 2))


def test_triplet_k_larger_than_available_negatives():
    # one negative only; k=10 must not score the other positive as a negative
    scores, targets = t([[0.5, 0.5, 0.7]]), t([[1, 1, 0]])
    loss_k10 = triplet_loss(scores, targets, num_negatives=10, generator=gen(), **FIXED)
    loss_k1 = triplet_loss(scores, targets, num_negatives=1, generator=gen(), **FIXED)
    assert loss_k10.item() == pytest.approx(0.7 - 0.5 + 0.3, abs=1e-6)
    assert loss_k10.item() == pytest.approx(loss_k1.item(), abs=1e-7)


def test_triplet_row_with_only_positives_costs_zero_but_counts():
    scores, targets = t([[0.5, 0.6], [0.2, 0.9]]), t([[1, 0], [1, 1]])
    loss = triplet_loss(scores, targets, generator=gen(), **FIXED)
    assert loss.item() == pytest.approx((0.6 - 0.5 + 0.3) / 2, abs=1e-6)


def test_triplet_k_limits_to_hardest():
    # s_p=0.5, negatives 0.7, 0.6, 0.45: fixed m=0.3 -> 0.5, 0.4, 0.25 ; k=2 keeps the two hardest
    scores, targets = t([[0.5, 0.45, 0.7, 0.6]]), t([[1, 0, 0, 0]])
    assert triplet_loss(scores, targets, num_negatives=2, **FIXED).item() == pytest.approx(0.9, abs=1e-6)
    assert triplet_loss(scores, targets, num_negatives=3, **FIXED).item() == pytest.approx(1.15, abs=1e-6)


def test_triplet_aggressive_weighting_by_hand():
    # s_p=0.5, negatives 0.7, 0.6, 0.1; fixed m=0.3 -> 0.5, 0.4, 0 ; softmax over violators [7, 6] only
    scores, targets = t([[0.5, 0.7, 0.6, 0.1]]), t([[1, 0, 0, 0]])
    loss = triplet_loss(scores, targets, aggressive=True, temperature=0.1, **FIXED)
    e = math.e
    expected = 0.5 * e / (e + 1) + 0.4 * 1 / (e + 1)
    wrong = (0.5 * math.exp(7) + 0.4 * math.exp(6)) / (math.exp(7) + math.exp(6) + math.exp(1))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert abs(expected - wrong) > 1e-4  # the test can tell "violators only" from "all negatives"


def test_triplet_aggressive_without_violators_is_zero_not_nan():
    loss = triplet_loss(t([[0.9, 0.1, 0.0]]), t([[1, 0, 0]]), aggressive=True, generator=gen())
    assert loss.item() == 0.0


@pytest.mark.parametrize("dynamic", [True, False])
def test_triplet_zero_when_positive_beats_negatives_by_more_than_margin(dynamic):
    scores, targets = t([[0.9, 0.55, 0.2], [0.1, 0.0, 0.8]]), t([[1, 0, 0], [0, 0, 1]])  # gaps 0.35, 0.7
    assert triplet_loss(scores, targets, dynamic_margin=dynamic, generator=gen()).item() == 0.0


def test_triplet_dynamic_margin_needs_only_margin_min_when_ordered():
    # gap 0.15: dynamic margin = 0.15 -> 0 ; fixed 0.3 -> 0.15
    scores, targets = t([[0.65, 0.5]]), t([[1, 0]])
    assert triplet_loss(scores, targets, generator=gen()).item() == 0.0
    assert triplet_loss(scores, targets, generator=gen(), **FIXED).item() == pytest.approx(0.15, abs=1e-6)


def test_triplet_gradient_signs_and_margin_detached():
    # s_p=0.3 < s_n=0.5: m = clamp(0.2) = 0.2, loss = 0.5-0.3+0.2 = 0.4. With a detached margin the
    # gradients are +1 / -1; a margin carrying gradient would give +2 / -2.
    scores = t([[0.3, 0.5, 0.0]], requires_grad=True)
    loss = triplet_loss(scores, t([[1, 0, 0]]), num_negatives=1, generator=gen())
    loss.backward()
    assert loss.item() == pytest.approx(0.4, abs=1e-6)
    torch.testing.assert_close(scores.grad, t([[-1.0, 1.0, 0.0]]))


def test_triplet_gradient_averages_over_rows():
    scores = t(S_2x3, requires_grad=True)
    triplet_loss(scores, t(Y_2x3), generator=gen(), **FIXED).backward()
    # row 0: only 0.6 violates -> +0.5 on it, -0.5 on s_p ; row 1 likewise on 0.6 / 0.4
    torch.testing.assert_close(scores.grad, t([[-0.5, 0.5, 0.0], [0.0, -0.5, 0.5]]))


def test_triplet_half_precision_is_computed_in_float32():
    scores = t(S_2x3)
    ref = triplet_loss(scores, t(Y_2x3), generator=gen())
    for dtype in (torch.float16, torch.bfloat16):
        low = triplet_loss(scores.to(dtype), t(Y_2x3), generator=gen())
        assert low.dtype == torch.float32
        assert low.item() == pytest.approx(ref.item(), abs=5e-3)


def test_triplet_determinism_with_seeded_generator_and_resume():
    torch.manual_seed(0)
    scores = torch.rand(16, 16)
    targets = (torch.rand(16, 16) < 0.3).float()
    a = [triplet_loss(scores, targets, generator=gen(7)).item() for _ in range(3)]
    assert a[0] == a[1] == a[2]
    # resume: saving and restoring the generator state replays the same draw
    g = gen(7)
    triplet_loss(scores, targets, generator=g)
    state = g.get_state()
    first = triplet_loss(scores, targets, generator=g).item()
    g.set_state(state)
    assert triplet_loss(scores, targets, generator=g).item() == first
    # different seeds do pick different positives (otherwise the generator would not matter)
    assert len({triplet_loss(scores, targets, generator=gen(s)).item() for s in range(8)}) > 1


def test_triplet_global_rng_is_untouched_when_generator_given():
    scores, targets = torch.full((4, 4), 0.5), torch.ones(4, 4)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    triplet_loss(scores, targets, generator=gen())
    assert torch.equal(torch.rand(3), expected)


def test_triplet_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        triplet_loss(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ConfigError) as err:
        triplet_loss(torch.zeros(2, 2), torch.eye(2), num_negatives=0, margin_min=0.5, margin_max=0.3)
    assert "num_negatives" in str(err.value) and "margin_min" in str(err.value)
    with pytest.raises(ConfigError, match="temperature"):
        triplet_loss(torch.zeros(2, 2), torch.eye(2), temperature=0.0)


# --------------------------------------------------------------------------------------------- infonce
def test_infonce_2x2_by_hand():
    scores, targets = t([[0.9, 0.1], [0.2, 0.6]]), torch.eye(2)
    loss = infonce_loss(scores, targets, temperature=0.5)
    expected = (math.log(1 + math.exp(-1.6)) + math.log(1 + math.exp(-0.8))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_infonce_other_positives_leave_the_denominator():
    # row 0 has two positives and one negative; each positive sees only itself and the negative
    loss = infonce_loss(t([[0.9, 0.5, 0.1]]), t([[1, 1, 0]]), temperature=1.0)
    expected = (math.log(1 + math.exp(0.1 - 0.9)) + math.log(1 + math.exp(0.1 - 0.5))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_infonce_rows_without_positive_or_negative():
    scores = t([[0.9, 0.1], [0.2, 0.6], [0.3, 0.3]], requires_grad=True)
    targets = t([[1, 1], [0, 1], [0, 0]])  # row 0: no negative (costs 0); row 2: no positive (excluded)
    loss = infonce_loss(scores, targets, temperature=0.5)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.8)) / 2, abs=1e-6)
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0].abs().sum() == 0 and scores.grad[2].abs().sum() == 0


def test_infonce_equals_cross_entropy_with_one_positive_per_row():
    torch.manual_seed(1)
    scores = torch.randn(8, 12).tanh()
    labels = torch.randint(0, 12, (8,))
    targets = F.one_hot(labels, 12)
    expected = F.cross_entropy(scores / 0.05, labels)
    assert infonce_loss(scores, targets, temperature=0.05).item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------------------------- L_r
def test_prime_regularizer_by_hand():
    raw = t([[0.5, 0.3, 0.2], [0.1, 0.6, 0.2]])
    proto = t([[0.55, 0.1, 0.4], [0.2, 0.9, 0.05]])
    targets = t([[1, 0, 0], [0, 1, 0]])
    # positives: 0.5-0.55+0.1 = 0.05 ; 0.6-0.9+0.1 < 0          -> mean over violators: 0.05 / 1
    # negatives (ranked by proto): row0 col2 0.4-0.2+0.1 = 0.3, col1 0.1-0.3+0.1 < 0 ;
    #                              row1 col0 0.2-0.1+0.1 = 0.2, col2 0.05-0.2+0.1 < 0 -> 0.5 / 2
    loss = prime_regularizer(raw, proto, targets, margin=0.1, num_negatives=10, generator=gen())
    assert loss.item() == pytest.approx((0.05 + 0.25) / 2, abs=1e-6)


def test_prime_regularizer_mines_negatives_in_prototype_space():
    raw, proto, targets = t([[0.5, 0.3, 0.2]]), t([[0.55, 0.1, 0.4]]), t([[1, 0, 0]])
    # k=1: the hardest prototype negative is col 2 (0.4) -> 0.3 ; mining on raw would pick col 1 -> 0
    loss = prime_regularizer(raw, proto, targets, num_negatives=1, generator=gen())
    assert loss.item() == pytest.approx((0.05 + 0.3) / 2, abs=1e-6)


def test_prime_regularizer_gradient_directions():
    raw = t([[0.5, 0.3, 0.2]], requires_grad=True)
    proto = t([[0.55, 0.1, 0.4]], requires_grad=True)
    prime_regularizer(raw, proto, t([[1, 0, 0]]), generator=gen()).backward()
    # L_r = (l_p + l_n) / 2: raising the prototype positive and lowering the prototype negative helps
    torch.testing.assert_close(raw.grad, t([[0.5, 0.0, -0.5]]))
    torch.testing.assert_close(proto.grad, t([[-0.5, 0.0, 0.5]]))


# --------------------------------------------------------------------------------------------- PRIME
def _embeddings(b: int, c: int, d: int, seed: int = 0, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, d, generator=g), dim=1)
    u = F.normalize(torch.randn(c, d, generator=g), dim=1)
    v = F.normalize(torch.randn(c, d, generator=g), dim=1)
    if grad:
        q, u, v = (x.clone().requires_grad_(True) for x in (q, u, v))
    return q, u, v


def test_prime_loss_parts_and_total():
    q, u, v = _embeddings(6, 6, 8)
    targets = (torch.rand(6, 6, generator=gen(3)) < 0.4).float()
    targets[torch.arange(6), torch.arange(6)] = 1
    out = prime_loss(q, u, v, targets, generator=gen(11), num_negatives=3, aggressive=True)
    assert set(out) == {"loss", "L_u", "L_uv", "L_i", "L_r"}
    total = out["L_u"] + out["L_uv"] + out["L_i"] + 0.1 * out["L_r"]
    assert out["loss"].item() == pytest.approx(total.item(), abs=1e-6)
    # same draws, same order, computed part by part
    g = gen(11)
    raw, proto = q @ u.T, q @ v.T
    kw = {"num_negatives": 3, "aggressive": True, "generator": g}
    assert out["L_u"].item() == triplet_loss(raw, targets, **kw).item()
    assert out["L_i"].item() == triplet_loss(u @ q.T, targets.T, **kw).item()
    assert out["L_uv"].item() == triplet_loss(proto, targets, **kw).item()
    assert out["L_r"].item() == pytest.approx(prime_regularizer(raw, proto, targets, generator=g).item())


def test_prime_loss_inverse_part_uses_transposed_targets():
    q, u, v = _embeddings(3, 3, 4, seed=2)
    targets = t([[0, 1, 0], [0, 0, 1], [1, 0, 0]])  # a 3-cycle: Y != Y^T, one positive per row and column
    assert not torch.equal(targets, targets.T)
    out = prime_loss(q, u, v, targets, generator=gen(), **FIXED)
    right = triplet_loss(u @ q.T, targets.T, **FIXED)
    wrong = triplet_loss(u @ q.T, targets, **FIXED)
    assert out["L_i"].item() == pytest.approx(right.item(), abs=1e-6)
    assert abs(right.item() - wrong.item()) > 1e-3


def test_prime_loss_rectangular_batch_and_gradients():
    q, u, v = _embeddings(4, 6, 8, grad=True)
    targets = torch.zeros(4, 6)
    targets[[0, 1, 2, 3], [0, 2, 4, 5]] = 1
    out = prime_loss(q, u, v, targets, base="infonce", temperature=0.1, generator=gen())
    out["loss"].backward()
    for x in (q, u, v):
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_prime_loss_weights_and_validation():
    q, u, v = _embeddings(4, 4, 8)
    y = torch.eye(4)
    a = prime_loss(q, u, v, y, weights=LossWeights(r=0.0), generator=gen())
    assert a["loss"].item() == pytest.approx((a["L_u"] + a["L_uv"] + a["L_i"]).item(), abs=1e-6)
    b = prime_loss(q, u, v, y, weights=LossWeights(u=2.0, uv=0.5, i=0.0, r=1.0), generator=gen())
    expected = 2.0 * b["L_u"] + 0.5 * b["L_uv"] + b["L_r"]
    assert b["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ConfigError, match="valid names: infonce, triplet"):
        prime_loss(q, u, v, y, base="hinge")
    with pytest.raises(ValueError) as err:
        prime_loss(q, u[:3], v, y)
    assert "prototypes" in str(err.value)
    with pytest.raises(ConfigError, match="reg_negatives"):
        prime_loss(q, u, v, y, reg_negatives=0)


def test_dual_encoder_loss():
    q, u, _ = _embeddings(3, 3, 4, seed=2)
    targets = t([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    plain = dual_encoder_loss(q, u, targets, **FIXED)
    assert set(plain) == {"loss", "L_u"}
    assert plain["loss"].item() == pytest.approx(triplet_loss(q @ u.T, targets, **FIXED).item())
    both = dual_encoder_loss(q, u, targets, symmetric=True, **FIXED)
    assert set(both) == {"loss", "L_u", "L_i"}
    assert both["L_i"].item() == pytest.approx(triplet_loss(u @ q.T, targets.T, **FIXED).item())
    assert both["loss"].item() == pytest.approx((both["L_u"] + both["L_i"]).item())
    weighted = dual_encoder_loss(q, u, targets, symmetric=True, weights=LossWeights(u=0.5, i=2.0), **FIXED)
    assert weighted["loss"].item() == pytest.approx((0.5 * weighted["L_u"] + 2.0 * weighted["L_i"]).item())


# --------------------------------------------------------------------------------------------- registry
def test_registry():
    assert get_loss("triplet") is triplet_loss and get_loss("infonce") is infonce_loss
    assert set(LOSSES) == {"triplet", "infonce"}
    with pytest.raises(ConfigError, match="unknown loss 'arcface'; valid names: infonce, triplet"):
        get_loss("arcface")


def test_package_import_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vixml.training.losses; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------- learning
def test_triplet_learns_planted_positives():
    torch.manual_seed(0)
    n, d = 24, 16
    targets = torch.eye(n)
    targets[torch.arange(n), (torch.arange(n) + 1) % n] = 1  # two planted positives per query
    q = torch.randn(n, d, requires_grad=True)
    u = torch.randn(n, d, requires_grad=True)
    opt = torch.optim.SGD([q, u], lr=1.0)
    g = gen(0)

    def scores() -> torch.Tensor:
        return F.normalize(q, dim=1) @ F.normalize(u, dim=1).T

    start = triplet_loss(scores(), targets, generator=gen(1)).item()
    for _ in range(300):
        opt.zero_grad()
        triplet_loss(scores(), targets, num_negatives=5, generator=g).backward()
        opt.step()
    with torch.no_grad():
        s = scores()
        final = max(triplet_loss(s, targets, generator=gen(seed)).item() for seed in range(5))
        worst_pos = s.masked_fill(targets == 0, float("inf")).min(dim=1).values
        best_neg = s.masked_fill(targets == 1, float("-inf")).max(dim=1).values
    assert start > 0.1
    assert final < 1e-3
    assert (worst_pos > best_neg).all()  # every positive ranks above every negative (rank 1 and 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_losses_on_cuda_with_autocast_match_cpu():
    q, u, v = _embeddings(64, 64, 32)
    targets = torch.eye(64)
    cpu = prime_loss(q, u, v, targets, aggressive=True, generator=gen(), **FIXED)
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    with torch.autocast("cuda", dtype=torch.float16):
        out = prime_loss(q.to(dev), u.to(dev), v.to(dev), targets.to(dev), aggressive=True, generator=g, **FIXED)
    assert out["loss"].dtype == torch.float32
    assert out["loss"].item() == pytest.approx(cpu["loss"].item(), abs=5e-3)  # one positive per row: no draws


# --------------------------------------------------------------------------------------------- the objective
def _tied_regularizer_grad(*overrides: str) -> torch.Tensor:
    """d loss / d v of a run's objective (loss = L_r alone) on a batch whose first positive ties L_r's hinge.

    q is the identity, so q u^T = u^T and q v^T = v^T: row 0's positive has raw 0.5, prototype 0.75 and
    margin 0.25 (hinge argument exactly 0); row 1's violates (0.5 - 0.25 + 0.25 > 0); no negative violates.
    """
    from vixml.config import RunConfig, apply_overrides
    from vixml.training.losses import Objective

    weights = ["loss.weights.u=0", "loss.weights.uv=0", "loss.weights.i=0", "loss.weights.r=1"]
    cfg = apply_overrides(RunConfig(), ["prototypes.reg_margin=0.25", *weights, *overrides])
    objective = Objective(cfg.loss, cfg.prototypes, generator=gen())
    q, u = torch.eye(2), t([[0.5, 0.0], [0.0, 0.5]])
    v = t([[0.75, -0.5], [-0.5, 0.25]], requires_grad=True)
    parts = objective(q, u, torch.eye(2), v)
    parts["loss"].backward()
    assert parts["L_r"].item() == pytest.approx(0.25)
    return v.grad


@pytest.mark.parametrize("base", ["triplet", "infonce"])
def test_the_objective_gives_hinge_tie_to_the_regularizer_under_either_base(base):
    split = _tied_regularizer_grad(f"loss.name={base}", "loss.hinge_tie=split")
    zero = _tied_regularizer_grad(f"loss.name={base}", "loss.hinge_tie=zero")
    assert split[0, 0].item() == pytest.approx(-0.25)  # half of the violating row's -0.5 (part_p / 1, L_r / 2)
    assert zero[0, 0].item() == 0.0  # relu: the tie sends nothing
    assert split[1, 1].item() == zero[1, 1].item() == pytest.approx(-0.5)
