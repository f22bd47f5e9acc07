"""The training objectives built from a base loss: PRIME's four-part loss and the plain dual encoder's.

docs/method.md section 4: ``L = L_u + L_uv + L_i + 0.1 * L_r``. Reference followed: the training step of the
ViXML code (``DiegoOrtego/vixml``, utils.py ``train``), which computes, in this order,
``L_u = crit(q @ u^T, Y)``, ``L_i = crit(u @ q^T, Y^T)``, ``L_uv = crit(q @ v^T, Y)`` and
``L_r = RegLoss(q @ u^T, q @ v^T, Y)``; without PRIME it trains on ``L_u`` alone. Each composition returns
its weighted total (``loss.weights``), which the trainer back-propagates as it is. The same order of
random draws is kept here, so one seeded generator reproduces a step exactly.

Every embedding must arrive L2-normalised (the encoder and the prototype module normalise their
outputs); nothing is normalised here, so the margins (0.1-0.3) act on cosine similarities only if the
caller keeps that contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vixml.config.sections import LossWeights
from vixml.training.losses._mining import HingeTie, int_problem, margin_problem, raise_problems
from vixml.training.losses.registry import get_loss
from vixml.training.losses.regularizer import prime_regularizer

if TYPE_CHECKING:
    import torch

__all__ = ["prime_loss", "dual_encoder_loss"]


def prime_loss(
    query_emb: torch.Tensor,
    label_text_emb: torch.Tensor,
    prototype_emb: torch.Tensor,
    targets: torch.Tensor,
    *,
    weights: LossWeights | None = None,
    reg_margin: float = 0.1,
    reg_negatives: int = 10,
    base: str = "triplet",
    hinge_tie: HingeTie = "split",
    generator: torch.Generator | None = None,
    **base_kwargs: Any,
) -> dict[str, torch.Tensor]:
    """PRIME's loss on one batch, returned as named parts and their weighted total.

    With q = ``query_emb``, u = ``label_text_emb``, v = ``prototype_emb``, Y = ``targets`` and ``base``
    the registered ranking loss:

    - ``L_u  = base(q u^T, Y)``: queries against label-text embeddings (the encoder's own space);
    - ``L_uv = base(q v^T, Y)``: queries against prototypes (the space used at inference);
    - ``L_i  = base(u q^T, Y^T)``: the inverse direction, each label ranking the batch's queries;
    - ``L_r  = prime_regularizer(q u^T, q v^T, Y)``: the prototype space must beat the raw space by
      ``reg_margin`` on a positive and on the ``reg_negatives`` hardest negatives;
    - ``loss = w.u L_u + w.uv L_uv + w.i L_i + w.r L_r`` with ``w = weights`` (paper: 1, 1, 1, 0.1).

    Args:
        query_emb: (B, d) L2-normalised query embeddings.
        label_text_emb: (C, d) L2-normalised label-text embeddings of the batch's candidate labels (the
            PRIME sampler uses one positive per query, so C = B).
        prototype_emb: (C, d) L2-normalised prototypes of the same labels, same order.
        targets: (B, C) relevance; non-zero = positive. Need not be symmetric (L_i uses its transpose).
        weights: the weights of the four parts (``loss.weights``; None = the paper's); a zero weight still
            computes and reports its part.
        reg_margin: margin of L_r (paper: 0.1).
        reg_negatives: hardest negatives per row in L_r (paper: 10).
        base: registered base loss name ("triplet" or "infonce").
        hinge_tie: gradient of every hinge at exactly 0 (L_r's, and the triplet base's): see ``triplet_loss``.
        generator: the only source of randomness, shared by all parts in a fixed order.
        **base_kwargs: hyper-parameters of the base loss (e.g. ``num_negatives``, ``aggressive``).

    Returns:
        ``{"loss", "L_u", "L_uv", "L_i", "L_r"}``: scalar tensors; ``loss`` is the one to back-propagate,
        the parts are for logging (still attached to the graph: detach before storing).

    Raises:
        ValueError: inconsistent shapes. ConfigError: unknown ``base`` or bad hyper-parameters.
    """
    _check_shapes(query_emb, label_text_emb, targets, prototype_emb)
    raise_problems(
        "prime_loss", [margin_problem(reg_margin, "reg_margin"), int_problem(reg_negatives, "reg_negatives")]
    )
    w = weights if weights is not None else LossWeights()
    loss_fn = get_loss(base)
    if base == "triplet":
        base_kwargs = {"hinge_tie": hinge_tie, **base_kwargs}
    raw = query_emb @ label_text_emb.T  # (B, C)
    proto = query_emb @ prototype_emb.T  # (B, C)
    parts = {"L_u": loss_fn(raw, targets, generator=generator, **base_kwargs)}
    # u q^T is exactly (q u^T)^T: transposing reuses the product (same values, same gradients).
    parts["L_i"] = loss_fn(raw.T, targets.T, generator=generator, **base_kwargs)
    parts["L_uv"] = loss_fn(proto, targets, generator=generator, **base_kwargs)
    parts["L_r"] = prime_regularizer(
        raw, proto, targets, margin=reg_margin, num_negatives=reg_negatives, hinge_tie=hinge_tie, generator=generator
    )
    total = w.u * parts["L_u"] + w.uv * parts["L_uv"] + w.i * parts["L_i"] + w.r * parts["L_r"]
    return {"loss": total, "L_u": parts["L_u"], "L_uv": parts["L_uv"], "L_i": parts["L_i"], "L_r": parts["L_r"]}


def dual_encoder_loss(
    query_emb: torch.Tensor,
    label_emb: torch.Tensor,
    targets: torch.Tensor,
    *,
    symmetric: bool = False,
    weights: LossWeights | None = None,
    base: str = "triplet",
    generator: torch.Generator | None = None,
    **base_kwargs: Any,
) -> dict[str, torch.Tensor]:
    """The plain dual encoder's loss (no prototypes): ``L_u``, plus ``L_i`` when ``symmetric``.

    ``loss = w.u L_u``; with ``symmetric``, ``+ w.i L_i`` where ``L_i = base(u q^T, Y^T)`` (the reference
    trains the plain model on ``L_u`` alone, hence the default; ``loss.symmetric`` opts in).

    Args:
        query_emb: (B, d) L2-normalised query embeddings.
        label_emb: (C, d) L2-normalised label embeddings of the batch's candidate labels.
        targets: (B, C) relevance; non-zero = positive.
        symmetric: also train the label -> query direction.
        weights: the weights of the parts (only ``u`` and ``i`` count; None = 1 and 1).
        base: registered base loss name.
        generator: the only source of randomness.
        **base_kwargs: hyper-parameters of the base loss.

    Returns:
        ``{"loss", "L_u"}``, plus ``"L_i"`` when ``symmetric``: scalar tensors, ``loss`` their weighted sum.

    Raises:
        ValueError: inconsistent shapes. ConfigError: unknown ``base`` or bad hyper-parameters.
    """
    _check_shapes(query_emb, label_emb, targets, None)
    w = weights if weights is not None else LossWeights()
    loss_fn = get_loss(base)
    raw = query_emb @ label_emb.T
    parts = {"L_u": loss_fn(raw, targets, generator=generator, **base_kwargs)}
    total = w.u * parts["L_u"]
    if symmetric:
        parts["L_i"] = loss_fn(raw.T, targets.T, generator=generator, **base_kwargs)
        total = total + w.i * parts["L_i"]
    return {"loss": total, **parts}


def _check_shapes(
    query: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, prototypes: torch.Tensor | None
) -> None:
    """Raise one ValueError listing every shape inconsistency among the inputs of a composition."""
    problems: list[str] = []
    if query.dim() != 2:
        problems.append(f"query embeddings must be (B, d), got {tuple(query.shape)}")
    if labels.dim() != 2:
        problems.append(f"label embeddings must be (C, d), got {tuple(labels.shape)}")
    if prototypes is not None and prototypes.shape != labels.shape:
        problems.append(
            f"prototypes {tuple(prototypes.shape)} must match label embeddings {tuple(labels.shape)} (C, d)"
        )
    if not problems:
        if query.shape[1] != labels.shape[1]:
            problems.append(f"embedding sizes differ: queries d={query.shape[1]}, labels d={labels.shape[1]}")
        expected = (query.shape[0], labels.shape[0])
        if tuple(targets.shape) != expected:
            problems.append(f"targets must be (B, C) = {expected}, got {tuple(targets.shape)}")
    if problems:
        raise ValueError("; ".join(problems))
