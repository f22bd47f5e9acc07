"""Exact running top-k of score blocks in torch (the GPU route): group maxima, pruning, tie-safe merges.

The blocked search (:mod:`vixml.search.exact`) computes one score block ``S`` (rows = queries,
columns = a contiguous range of labels) at a time and hands it to :class:`RunningTopK`, which keeps
the best ``k`` (score, label) pairs of each row seen so far; it runs on any device, and is the
route on GPU (the CPU uses the numba reservoirs of :mod:`vixml.search.reservoir`, which are several
times cheaper there). ``torch.topk`` over whole blocks would cost much more than needed, so the
selection works in three steps:

1. Group maxima. ``S`` viewed as ``(rows, G, g)`` gives the maximum of each group of ``g`` columns
   (one cheap, vectorised pass over memory that is still in cache). The best ``k`` elements of a row
   provably lie in its ``k`` groups with the largest maxima: if an element ``x`` of the top-k sat in
   an unselected group, each of the ``k`` selected groups would hold an element ``>= x``.
2. Pruning. Only elements strictly above the current ``k``-th best score of the row can enter (an
   equal one loses the tie to the older, lower label id), so only groups whose maximum beats that
   threshold are kept; after the first blocks that is a handful of groups per row.
3. Merge. The surviving candidates (``kk * g`` elements gathered from ``S``) and the running buffer
   go through one small ``torch.topk``.

Ties. The result is the top-k under the total order "higher score first, then lower label id".
``torch.topk`` breaks ties arbitrarily, so every selection takes one element more than it keeps and
checks that the boundary is strict (``v[k-1] > v[k]``); then the kept set is the same under any
tie-breaking. Rows whose boundary is tied (rare on real data; every row on data with duplicate
labels) are redone exactly with stable sorts over the buffer and the whole block row. The order
inside the kept set is fixed at the end by :func:`sort_total`. With ``exact_ties=False`` (half
precision scores, where ties are everywhere and exactness is not promised) these checks are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["RunningTopK", "sort_total", "best_of", "group_size"]

#: Smallest number of groups per row, as a multiple of ``k + 1``, for the group stage to pay off.
_MIN_GROUPS_PER_K = 2
#: Largest group width tried (a power of two).
_MAX_GROUP = 64


def group_size(n: int, k: int) -> int:
    """Group width for a block of ``n`` columns and top-``k``; 1 means "no group stage".

    Wider groups make the group-maxima row shorter (cheaper to select from) but the candidate set
    (``k * g`` elements) larger; ``sqrt(n / k)`` balances the two for the first block, and pruning
    makes later blocks cheap whatever ``g`` is.
    """
    g = 1
    while g * 2 <= _MAX_GROUP and (g * 2) ** 2 * k <= n * 4 and n // (g * 2) >= _MIN_GROUPS_PER_K * (k + 1):
        g *= 2
    return g


def sort_total(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (score descending, index ascending).

    Args:
        values: (r, m) scores.
        indices: (r, m) int64 label ids (``-1`` for padding, which carries ``-inf`` scores).

    Returns:
        (values, indices), both (r, m), rows in the total order.
    """
    import torch

    by_index = torch.argsort(indices, dim=1)
    values = values.gather(1, by_index)
    indices = indices.gather(1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, order), indices.gather(1, order)


def best_of(values: torch.Tensor, indices: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` of each row under the total order, best first (full stable sorts: for short rows).

    Args:
        values: (r, m) scores; indices: (r, m) int64 label ids, distinct within a row (``-1`` padding).

    Returns:
        (values, indices), each (r, k) (padded with -inf / -1 when ``m < k``).
    """
    import torch

    values, indices = sort_total(values, indices)
    if values.shape[1] < k:
        pad = k - values.shape[1]
        values = torch.nn.functional.pad(values, (0, pad), value=float("-inf"))
        indices = torch.nn.functional.pad(indices, (0, pad), value=-1)
    return values[:, :k], indices[:, :k]


class RunningTopK:
    """The best ``k`` (score, label id) pairs per row over score blocks pushed in label order.

    Args:
        rows: number of query rows.
        k: how many to keep per row (``k >= 1``).
        dtype: score dtype of the blocks that will be pushed (and of the buffer).
        device: torch device of the blocks.
        exact_ties: break ties by lower label id exactly (see the module docstring).

    Attributes:
        values: (rows, k) best scores, descending (``-inf`` where fewer than ``k`` seen).
        indices: (rows, k) int64 label ids matching ``values`` (``-1`` for padding).
    """

    def __init__(self, rows: int, k: int, dtype: torch.dtype, device: torch.device | str, exact_ties: bool = True):
        import torch

        self.k = k
        self.exact_ties = exact_ties
        self.values = torch.full((rows, k), float("-inf"), dtype=dtype, device=device)
        self.indices = torch.full((rows, k), -1, dtype=torch.int64, device=device)

    def seed(self, values: torch.Tensor, indices: torch.Tensor) -> None:
        """Start from an earlier result: (rows, k) scores sorted descending and their ids."""
        self.values = values.to(self.values.device, self.values.dtype).clone()
        self.indices = indices.to(self.indices.device).clone()

    def push(self, scores: torch.Tensor, offset: int) -> None:
        """Merge a block of scores whose column ``j`` is label ``offset + j``.

        Blocks must arrive in increasing label order (``offset`` at least the previous block's end),
        which is what makes "an equal score loses to the buffer" the right tie rule.

        Args:
            scores: (rows, n) contiguous score block (it is read, never written).
            offset: label id of column 0.
        """
        import torch

        rows, n = scores.shape
        k = self.k
        g = group_size(n, k)
        group_flags = None
        if g > 1:
            cand_v, cand_i, group_flags = self._group_candidates(scores, g)
            if cand_v is None:  # no group of any row beats its threshold: nothing to merge
                return
        else:
            cand_v = scores
            cand_i = torch.arange(n, device=scores.device).expand(rows, n)
        old_v, old_i = self.values, self.indices
        flags = self._merge(cand_v, cand_i + offset)
        if group_flags is not None:
            flags = group_flags if flags is None else flags | group_flags
        if flags is not None and bool(flags.any()):
            rows_idx = flags.nonzero().squeeze(1)
            full_i = torch.arange(offset, offset + n, device=scores.device).expand(len(rows_idx), n)
            self._exact_rows(rows_idx, old_v[rows_idx], old_i[rows_idx], scores[rows_idx], full_i)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (values, indices), each (rows, k), in the final order (ties: lower id first)."""
        if self.exact_ties:
            self.values, self.indices = sort_total(self.values, self.indices)
        return self.values, self.indices

    # -- internals ---------------------------------------------------------------------------------

    def _group_candidates(self, scores: torch.Tensor, g: int):
        """Candidates of a block from its groups that beat the row threshold.

        Returns:
            (cand_v (rows, m), cand_i (rows, m) block-local column ids, flags (rows,) bool or None),
            or (None, None, None) when no group of any row can enter the top-k.
        """
        import torch

        rows, n = scores.shape
        n_main = n - n % g
        n_groups = n_main // g
        grouped = scores.as_strided((rows, n_groups, g), (scores.stride(0), g, 1))
        maxima = grouped.amax(dim=2)  # (rows, G)
        threshold = self.values[:, self.k - 1 : self.k]  # (rows, 1), the current k-th best
        above = (maxima > threshold).sum(dim=1)  # (rows,)
        kk = min(int(above.max()), self.k)
        tail = n - n_main
        if kk == 0 and tail == 0:
            return None, None, None
        flags = None
        if kk > 0:
            take = min(kk + 1, n_groups)
            top_v, top_g = torch.topk(maxima, take, dim=1, sorted=True)
            if self.exact_ties and take > kk:
                # a row with more than kk competing groups relies on top-kk being unambiguous
                flags = (above > kk) & (top_v[:, kk - 1] == top_v[:, kk])
            offsets = torch.arange(g, device=scores.device)
            cand_i = (top_g[:, :kk, None] * g + offsets).reshape(rows, kk * g)
            cand_v = scores.gather(1, cand_i)
        if tail:
            tail_i = torch.arange(n_main, n, device=scores.device).expand(rows, tail)
            if kk > 0:
                cand_v = torch.cat([cand_v, scores[:, n_main:]], dim=1)
                cand_i = torch.cat([cand_i, tail_i], dim=1)
            else:
                cand_v, cand_i = scores[:, n_main:], tail_i
        return cand_v, cand_i, flags

    def _merge(self, cand_v: torch.Tensor, cand_i: torch.Tensor) -> torch.Tensor | None:
        """Top-k of buffer + candidates into the buffer; returns rows whose boundary is tied."""
        import torch

        k = self.k
        all_v = torch.cat([self.values, cand_v], dim=1)
        all_i = torch.cat([self.indices, cand_i], dim=1)
        take = min(k + 1, all_v.shape[1])
        top_v, top_p = torch.topk(all_v, take, dim=1, sorted=True)
        self.values = top_v[:, :k].contiguous()
        self.indices = all_i.gather(1, top_p[:, :k])
        if not self.exact_ties or take <= k:
            return None
        # equal -inf at the boundary is padding against padding: harmless
        return (top_v[:, k - 1] == top_v[:, k]) & (top_v[:, k - 1] > float("-inf"))

    def _exact_rows(self, rows_idx, old_v, old_i, new_v, new_i) -> None:
        """Redo the merge of some rows with stable sorts (exact under the total order)."""
        import torch

        values, indices = sort_total(torch.cat([old_v, new_v], dim=1), torch.cat([old_i, new_i], dim=1))
        self.values[rows_idx] = values[:, : self.k]
        self.indices[rows_idx] = indices[:, : self.k]
