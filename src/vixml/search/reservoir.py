"""CPU running top-k of score blocks: per-row reservoirs filled by a numba kernel, rows split over threads.

The torch route (:class:`vixml.search.selection.RunningTopK`) spends as long in ``torch.topk``,
gathers and concatenations as the matmul that made the block takes on a CPU; this one streams each
block once through a compiled kernel (:mod:`vixml.search._kernels`) at about a tenth of the matmul's
cost. The result is exact under the total order "higher score first, then lower label id".
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Reservoir", "RowPool"]

#: Reservoir slots per row, as a multiple of k (a compaction every (factor - 1) * k entrants).
_CAP_FACTOR = 2


class RowPool:
    """Runs a row-wise kernel on contiguous row ranges in ``workers`` threads (inline for one).

    The kernels release the GIL, so the threads run in parallel; unlike an OpenMP team, idle
    threads sleep instead of spinning against the matmul's threads. Use as a context manager.

    Args:
        workers: threads (``torch.get_num_threads()`` is the natural choice).
    """

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._executor = None
        if self.workers > 1:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="vixml-topk")

    def __enter__(self) -> RowPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def map_rows(self, kernel: Callable, rows: int, sliced: tuple, *args) -> None:
        """Call ``kernel(*[a[lo:hi] for a in sliced], *args)`` over a partition of ``range(rows)``."""
        parts = min(self.workers, max(1, rows // 16))
        if parts == 1 or self._executor is None:
            kernel(*sliced, *args)
            return
        bounds = np.linspace(0, rows, parts + 1).astype(int)
        futures = [
            self._executor.submit(kernel, *(a[lo:hi] for a in sliced), *args)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for future in futures:
            future.result()


_INLINE = RowPool(1)


class Reservoir:
    """The best ``k`` (score, label id) pairs per row over score blocks pushed in label order.

    Args:
        rows: number of query rows.
        k: how many to keep per row (``1 <= k < 2**31``).
        pool: threads to split rows over (default: the calling thread).

    Label ids must be below ``2**32``.
    """

    def __init__(self, rows: int, k: int, pool: RowPool | None = None):
        from vixml.search import _kernels

        self._kernels = _kernels
        self.k = k
        self.pool = pool or _INLINE
        self.entries = np.empty((rows, _CAP_FACTOR * k), dtype=np.int64)
        self.count = np.zeros(rows, dtype=np.int64)
        self.threshold = np.full(rows, _kernels.EMPTY, dtype=np.int64)

    def seed(self, values: np.ndarray, indices: np.ndarray) -> None:
        """Start from an earlier result (e.g. a previous chunk of labels): (rows, k) scores and ids.

        Padding (id ``-1``) is skipped; later blocks must hold larger label ids than the seeds.
        """
        valid = indices >= 0
        entries = self._kernels.encode(values.astype(np.float32, copy=False), indices)
        for row in np.flatnonzero(valid.any(axis=1)):  # once per chunk of labels: a loop is fine
            kept = entries[row, valid[row]]
            self.entries[row, : len(kept)] = kept
            self.count[row] = len(kept)

    def push(self, scores: torch.Tensor | np.ndarray, offset: int) -> None:
        """Merge a (rows, n) C-contiguous CPU block whose column ``j`` is label ``offset + j``.

        ``scores`` is float32, or a torch bfloat16 tensor (widened row by row inside the kernel).
        """
        import torch

        state = (self.entries, self.count, self.threshold)
        if isinstance(scores, torch.Tensor):
            if scores.dtype == torch.bfloat16:
                bits = scores.view(torch.int16).numpy()
                self.pool.map_rows(_push_bf16, len(bits), (bits, *state), offset, self.k)
                return
            scores = scores.numpy()
        if scores.dtype != np.float32 or not scores.flags.c_contiguous:
            raise ValueError("Reservoir.push needs a C-contiguous float32 (or torch bfloat16) block")
        sliced = (scores, scores.view(np.int32))
        self.pool.map_rows(_push_f32, len(scores), sliced + state, offset, self.k)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(values (rows, k) float32, indices (rows, k) int64), best first; padding is (-inf, -1)."""
        out = np.empty((self.entries.shape[0], self.k), dtype=np.int64)
        self.pool.map_rows(_finish, len(out), (self.entries, self.count, out), self.k)
        return self._kernels.decode(out)


# kernel calls with the row-sliced arrays first, as RowPool.map_rows passes them


def _push_f32(scores, bits, entries, count, threshold, offset, k) -> None:
    from vixml.search import _kernels

    _kernels.push(scores, bits, offset, entries, count, threshold, k)


def _push_bf16(bits, entries, count, threshold, offset, k) -> None:
    from vixml.search import _kernels

    _kernels.push_bf16(bits, offset, entries, count, threshold, k)


def _finish(entries, count, out, k) -> None:
    from vixml.search import _kernels

    _kernels.finish(entries, count, k, out)
