"""Host memory of a top-k search and of turning its result into predictions.

Why beside the other estimates: ``vixml predict``, a run's evaluation and the scale benchmark add a search to
what they hold, and must refuse before embedding anything. The sizes follow :func:`vixml.search.topk`'s own
choices (its blocks, label chunk and shortlist), read from :mod:`vixml.search.exact`.
"""

from __future__ import annotations

__all__ = ["search_memory", "to_csr_memory"]


def search_memory(
    n_queries: int, n_labels: int, dim: int, k: int, *, device: str = "cpu", precision: str = "fp32"
) -> int:
    """Bytes of host memory one :func:`~vixml.search.topk` call adds to its inputs (memory-mapped labels are
    read, not held).

    The (n, k) float32 scores and int64 ids returned, the label chunk converted for the product (CPU:
    oneDNN's copy of float32 labels, or the bfloat16 copy; at most one label chunk), the score and query
    blocks, and the per-block selection state.
    """
    import torch

    from vixml.search.blocks import onednn_available
    from vixml.search.exact import ONEDNN_MIN_QUERIES, default_blocks, label_chunk_bytes, shortlist_margin

    dev = torch.device(device)
    out = 12 * n_queries * k
    if dev.type == "cuda":
        return out + (64 << 20)
    bq, bl = default_blocks(dev)
    itemsize = 4 if precision == "fp32" else 2
    copies = precision != "fp32" or (n_queries >= ONEDNN_MIN_QUERIES and onednn_available())
    chunk = min(n_labels * dim * itemsize, label_chunk_bytes(dev)) if copies else 0
    blocks = 3 * bq * bl * 4 + 2 * bq * dim * 4 + 24 * bq * (k + shortlist_margin(k))
    return out + chunk + blocks


def to_csr_memory(n_queries: int, k: int) -> int:
    """Bytes :func:`~vixml.search.to_csr` (and writing its result as ``.npz``) holds beyond its inputs at its
    peak: the CSR (8 per prediction), the writer's finiteness mask (1) and one block's sort buffers (bounded)."""
    return 10 * n_queries * k + (64 << 20)
