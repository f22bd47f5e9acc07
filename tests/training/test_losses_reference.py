"""Gradient-level equality with the ViXML reference losses, ties at max(0, x) = 0 included.

``_RefTriplet`` and ``_RefReg`` are transcriptions of ``ATripletMarginLossOHNMDM`` and ``RegLoss`` from the
reference code (DiegoOrtego/vixml, loss.py) with the options of its run scripts (``--reduction custom``,
``--no-fixed_pos``; ``--agressive-loss`` as a parameter); ``_ref_prime`` is the loss composition of its
``utils.train``. Only what those options leave reachable is kept; the arithmetic is unchanged.
"""

from __future__ import annotations

import pytest
import torch

from vixml.config import LossWeights
from vixml.training.losses import dual_encoder_loss, prime_loss, prime_regularizer, triplet_loss


class _RefTriplet(torch.nn.Module):
    def __init__(self, margin_min=0.1, margin_max=0.3, k=10, apply_softmax=False, tau=0.1):
        super().__init__()
        self.margin_min, self.margin_max, self.k, self.apply_softmax, self.tau = (
            margin_min,
            margin_max,
            k,
            apply_softmax,
            tau,
        )

    def forward(self, input, target):
        with torch.no_grad():
            indices_p = torch.multinomial(target, 1, replacement=False)
        sim_p = input.gather(1, indices_p)
        similarities = torch.where(target == 0, input, torch.full_like(input, -50))
        k = min(self.k, similarities.size(1))
        _, indices = torch.topk(similarities, largest=True, dim=1, k=k)
        sim_n = input.gather(1, indices)
        if self.margin_min == self.margin_max:
            d_margin = self.margin_min
        else:
            d_margin = torch.clamp(input=torch.abs(sim_p - sim_n).detach(), min=self.margin_min, max=self.margin_max)
        loss = torch.max(torch.zeros_like(sim_p), sim_n - sim_p + d_margin)
        if self.apply_softmax:
            sim_n[loss == 0] = -50
            prob = torch.softmax(sim_n / self.tau, dim=1)
            loss = loss * prob
        return loss.sum(dim=1).mean()  # reduction "custom"


class _RefReg(torch.nn.Module):
    def __init__(self, margin=0.1, k=10):
        super().__init__()
        self.margin, self.k = margin, k

    def forward(self, sim_i, sim_f, target):
        with torch.no_grad():
            indices = torch.multinomial(target, 1, replacement=False)
        sim_p_i = sim_i.gather(1, indices)
        sim_p_f = sim_f.gather(1, indices)
        loss_p = torch.max(torch.zeros_like(sim_p_i), sim_p_i - sim_p_f + self.margin).flatten()
        similarities = torch.where(target == 0, sim_f, torch.full_like(sim_f, -50))
        k = min(self.k, similarities.size(1))
        _, indices = torch.topk(similarities, largest=True, dim=1, k=k)
        sim_n_f = sim_f.gather(1, indices)
        sim_n_i = sim_i.gather(1, indices)
        loss_n = torch.max(torch.zeros_like(sim_n_f), sim_n_f - sim_n_i + self.margin).flatten()
        loss_p = 0 if loss_p.sum() == 0 else loss_p.sum() / (loss_p > 0).sum()
        loss_n = 0 if loss_n.sum() == 0 else loss_n.sum() / (loss_n > 0).sum()
        return (loss_p + loss_n) / 2


def _ref_prime(q, u, v, y, aggressive):
    """utils.train with --prime: L_u, L_i, L_uv, then L_r, in this order of random draws."""
    criterion = _RefTriplet(k=10, apply_softmax=aggressive)
    sim_i = q @ u.T
    loss_u = criterion(sim_i, y)
    loss_i = criterion(u @ q.T, y.T)
    sim_f = q @ v.T
    loss_uv = criterion(sim_f, y)
    loss_r = _RefReg(k=10)(sim_i, sim_f, y)
    return loss_u + loss_uv + loss_i + 0.1 * loss_r


def _batch(b=24, c=24, seed=0, multi=True):
    """Scores on a 1/64 grid (exact in float32) and targets with a few positives per row (b = c > 20, so every
    row keeps >= 10 negatives: with fewer the reference would score positives as negatives)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(-64, 65, (b, c), generator=g).float() / 64
    y = torch.zeros(b, c)
    y[torch.arange(b), torch.arange(b) % c] = 1
    if multi:
        y[torch.rand(b, c, generator=g) < 0.08] = 1
    return scores, y


def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    out.backward()
    return out.detach(), x.grad


def _ties(scores, y):
    """How many (row, negative) hinge terms of the reference triplet are exactly 0 with a correct order."""
    s_p = scores.masked_fill(y == 0, float("inf")).min(dim=1, keepdim=True).values  # any positive will do
    s_n = scores.masked_fill(y != 0, float("-inf")).topk(10, dim=1).values
    gap = s_p - s_n
    return int(((gap >= 0.1) & (gap <= 0.3)).sum())


@pytest.mark.parametrize("aggressive", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_matches_the_reference_in_value_and_gradient(aggressive, seed):
    scores, y = _batch(seed=seed)
    assert _ties(scores, y) > 0, "the batch must hold hinge ties for the test to mean anything"
    torch.manual_seed(seed)
    ref_value, ref_grad = _grad(lambda s: _RefTriplet(apply_softmax=aggressive)(s, y), scores)
    gen = torch.Generator().manual_seed(seed)
    ours_value, ours_grad = _grad(lambda s: triplet_loss(s, y, aggressive=aggressive, generator=gen), scores)
    assert ours_value.item() == pytest.approx(ref_value.item(), abs=1e-6)
    torch.testing.assert_close(ours_grad, ref_grad, atol=1e-6, rtol=1e-5)


def test_relu_ties_differ_from_the_reference_only_in_the_gradient():
    scores, y = _batch(seed=3)
    torch.manual_seed(3)
    ref_value, ref_grad = _grad(lambda s: _RefTriplet()(s, y), scores)
    gen = torch.Generator().manual_seed(3)
    value, grad = _grad(lambda s: triplet_loss(s, y, hinge_tie="zero", generator=gen), scores)
    assert value.item() == pytest.approx(ref_value.item(), abs=1e-6)
    assert not torch.allclose(grad, ref_grad, atol=1e-6)


def test_regularizer_matches_the_reference_including_the_no_violation_case():
    raw, y = _batch(seed=4)
    proto = (raw + 0.25).clamp(max=1)  # prototypes ahead everywhere: few violations, many exact ties
    for a, b in ((raw, proto), (proto, raw)):
        torch.manual_seed(5)
        ref_a = a.clone().requires_grad_(True)
        ref_b = b.clone().requires_grad_(True)
        ref = _RefReg()(ref_a, ref_b, y)
        gen = torch.Generator().manual_seed(5)
        ours_a = a.clone().requires_grad_(True)
        ours_b = b.clone().requires_grad_(True)
        ours = prime_regularizer(ours_a, ours_b, y, generator=gen)
        if isinstance(ref, torch.Tensor):
            ref.backward()
        ours.backward()
        assert float(ours.detach()) == pytest.approx(float(torch.as_tensor(ref).detach()), abs=1e-6)
        for mine, theirs in ((ours_a.grad, ref_a.grad), (ours_b.grad, ref_b.grad)):
            theirs = torch.zeros_like(mine) if theirs is None else theirs
            torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("aggressive", [False, True])
def test_prime_composition_matches_the_reference_gradients(aggressive):
    g = torch.Generator().manual_seed(7)
    b, d = 20, 16
    q0, u0, v0 = (torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1) for _ in range(3))
    _, y = _batch(b, b, seed=7)
    assert _ties(q0 @ u0.T, y) > 0 and _ties(q0 @ v0.T, y) > 0  # hinge ties in L_u and L_uv
    torch.manual_seed(8)
    ref = [x.clone().requires_grad_(True) for x in (q0, u0, v0)]
    ref_loss = _ref_prime(*ref, y, aggressive)
    ref_loss.backward()
    gen = torch.Generator().manual_seed(8)
    ours = [x.clone().requires_grad_(True) for x in (q0, u0, v0)]
    out = prime_loss(*ours, y, weights=LossWeights(), aggressive=aggressive, generator=gen)
    out["loss"].backward()
    assert out["loss"].item() == pytest.approx(ref_loss.item(), abs=1e-5)
    for mine, theirs in zip(ours, ref, strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-5, rtol=1e-4)


def test_plain_dual_encoder_is_l_u_alone_as_the_reference():
    g = torch.Generator().manual_seed(9)
    q0, u0 = (torch.nn.functional.normalize(torch.randn(24, 8, generator=g), dim=1) for _ in range(2))
    _, y = _batch(24, 24, seed=9)  # >= k negatives per row (with fewer the reference scores positives)
    torch.manual_seed(10)
    ref_q = q0.clone().requires_grad_(True)
    ref = _RefTriplet(apply_softmax=True)(ref_q @ u0.T, y)
    ref.backward()
    gen = torch.Generator().manual_seed(10)
    q = q0.clone().requires_grad_(True)
    out = dual_encoder_loss(q, u0, y, aggressive=True, generator=gen)
    out["loss"].backward()
    assert set(out) == {"loss", "L_u"}
    torch.testing.assert_close(q.grad, ref_q.grad, atol=1e-6, rtol=1e-5)
