"""Finding NaN/inf rows of a vector array, so that such inputs are refused instead of silently dropped.

A NaN label embedding is never selected by a top-k (every comparison with NaN is false), so that label
is never predicted; a NaN query returns no label; a NaN score ranks anywhere. Search, metrics and the
dataset layer refuse them with the rows named, using :func:`nonfinite_rows`, which works on numpy
arrays (memory maps included) and torch tensors alike, a bounded block of rows at a time.
"""

from __future__ import annotations

import numpy as np

from vixml.errors import Problem

__all__ = ["nonfinite_rows", "nonfinite_problem", "SHOWN"]

_BLOCK_BYTES = 1 << 26
_NUMPY_FLOATS = ("torch.float32", "torch.float64", "torch.float16")
SHOWN = 5


def nonfinite_rows(x, limit: int = SHOWN) -> tuple[int, list[int]]:
    """``(number of rows holding a NaN or inf, the first ``limit`` of them)`` of a 1-D or 2-D array/tensor.

    A 1-D input counts its entries. Integer arrays have none. Reads ``x`` in blocks of about 64 MiB.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is not None and not _is_float(dtype):
        return 0, []
    n = int(x.shape[0]) if len(x.shape) else 1
    width = int(np.prod(x.shape[1:])) if len(x.shape) > 1 else 1
    itemsize = int(getattr(dtype, "itemsize", 4)) or 4
    step = max(1, _BLOCK_BYTES // max(1, width * itemsize))
    count, first = 0, []
    for start in range(0, n, step):
        block = x[start : start + step]
        if hasattr(block, "isfinite") and block.device.type == "cpu" and str(block.dtype) in _NUMPY_FLOATS:
            block = block.detach().numpy()  # a view; numpy's isfinite is ~10x faster than torch's on CPU
        if hasattr(block, "isfinite"):  # a torch tensor: stay on its device, bring back one flag per row
            ok = block.isfinite()
            ok = ok.reshape(ok.shape[0], -1).all(1).cpu().numpy() if ok.dim() > 1 else ok.cpu().numpy()
        else:
            ok = np.isfinite(np.asarray(block))
            ok = ok.reshape(ok.shape[0], -1).all(axis=1) if ok.ndim > 1 else ok
        if not ok.all():
            bad = np.flatnonzero(~ok)
            count += int(bad.size)
            first += [start + int(i) for i in bad[: max(0, limit - len(first))]]
    return count, first


def nonfinite_problem(x, file: str, what: str, *, field: str | None = None) -> Problem | None:
    """A problem naming the first non-finite rows of ``x`` (``what``: e.g. ``"label embeddings"``), or None."""
    count, first = nonfinite_rows(x)
    if not count:
        return None
    rows = ", ".join(map(str, first)) + (", ..." if count > len(first) else "")
    total = int(x.shape[0]) if len(x.shape) else 1
    return Problem(
        file,
        f"{count} of {total} {what} hold NaN or inf values (row(s) {rows}); every value must be a finite number",
        field=field,
    )


def _is_float(dtype) -> bool:
    if isinstance(dtype, np.dtype):
        return dtype.kind in "fc"
    return bool(getattr(dtype, "is_floating_point", False)) or "float" in str(dtype) or "complex" in str(dtype)
