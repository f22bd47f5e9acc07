"""Numba kernels that parse and format ``*_X_Y.txt`` label files at memory speed.

Imported lazily by :mod:`vixml.data.labels` (numba is slow to import and compile). The parser is
strict and only says *whether* a file is well formed; on any defect the caller falls back to a careful
Python pass that names every problem with its line.
"""

from __future__ import annotations

import numpy as np

from vixml._numba import numba as nb

__all__ = ["count_byte", "parse_rows", "row_bytes", "format_rows"]

_SPACE, _TAB, _CR, _LF, _COLON = 32, 9, 13, 10, 58
_FLOAT32_MAX = 3.4028234663852886e38
_POW10 = np.array([10.0**k for k in range(23)])


@nb.njit(cache=True, nogil=True)
def count_byte(buf, value):  # pragma: no cover - compiled
    """Occurrences of ``value`` in the uint8 array ``buf`` (an upper bound of nnz for ``:``)."""
    count = 0
    for i in range(buf.shape[0]):
        if buf[i] == value:
            count += 1
    return count


@nb.njit(cache=True, nogil=True)
def _parse_float(buf, pos, n):  # pragma: no cover - compiled
    """Parse ``[+-]digits[.digits][(e|E)[+-]digits]`` at ``pos``: (ok, value, next position)."""
    sign = 1.0
    if pos < n and (buf[pos] == 43 or buf[pos] == 45):
        if buf[pos] == 45:
            sign = -1.0
        pos += 1
    mantissa = 0.0
    digits = 0
    exp10 = 0
    while pos < n and 48 <= buf[pos] <= 57:
        mantissa = mantissa * 10.0 + (buf[pos] - 48)
        digits += 1
        pos += 1
    if pos < n and buf[pos] == 46:
        pos += 1
        while pos < n and 48 <= buf[pos] <= 57:
            mantissa = mantissa * 10.0 + (buf[pos] - 48)
            exp10 -= 1
            digits += 1
            pos += 1
    if digits == 0:
        return False, 0.0, pos
    if pos < n and (buf[pos] == 101 or buf[pos] == 69):
        pos += 1
        esign = 1
        if pos < n and (buf[pos] == 43 or buf[pos] == 45):
            if buf[pos] == 45:
                esign = -1
            pos += 1
        e = 0
        edigits = 0
        while pos < n and 48 <= buf[pos] <= 57:
            e = e * 10 + (buf[pos] - 48)
            edigits += 1
            pos += 1
            if e > 100000:
                return False, 0.0, pos
        if edigits == 0:
            return False, 0.0, pos
        exp10 += esign * e
    if exp10 == 0:
        value = sign * mantissa
    elif -22 <= exp10 < 0:
        value = sign * (mantissa / _POW10[-exp10])  # exact divisor: correctly rounded for short mantissas
    else:
        value = sign * mantissa * 10.0**exp10
    if not np.isfinite(value) or abs(value) > _FLOAT32_MAX:
        return False, 0.0, pos
    return True, value, pos


@nb.njit(cache=True, nogil=True)
def parse_rows(buf, pos, n_rows, n_cols, indptr, indices, data, seen):  # pragma: no cover - compiled
    """Parse ``n_rows`` lines of ``label:value`` tokens starting at byte ``pos`` into CSR arrays.

    Args:
        buf: uint8 array, the whole file.
        pos: byte offset of the first row (just after the header line).
        indptr: int array (n_rows + 1,), filled. indices / data: arrays of capacity >= nnz, filled.
        seen: int64 array (n_cols,) set to -1: the last row each label occurred in (duplicate check of
            rows whose labels do not ascend; ascending rows cannot hold duplicates).

    Returns:
        (ok, nnz, sorted): ``ok`` False on the first defect of any kind (bad token, label out of
        range, duplicate label in a row, too few or too many rows); ``sorted`` whether every row's
        labels ascend.
    """
    n = buf.shape[0]
    nnz = 0
    is_sorted = True
    indptr[0] = 0
    for row in range(n_rows):
        if pos >= n:
            return False, nnz, is_sorted
        last = -1
        row_start = nnz
        use_seen = False  # sorted rows need no duplicate table: labels strictly ascend
        while True:
            while pos < n and (buf[pos] == _SPACE or buf[pos] == _TAB or buf[pos] == _CR):
                pos += 1
            if pos >= n or buf[pos] == _LF:
                break
            label = 0
            ndigits = 0
            while pos < n and 48 <= buf[pos] <= 57:
                label = label * 10 + (buf[pos] - 48)
                ndigits += 1
                pos += 1
                if ndigits > 18:
                    return False, nnz, is_sorted
            if ndigits == 0 or pos >= n or buf[pos] != _COLON:
                return False, nnz, is_sorted
            pos += 1
            ok, value, pos = _parse_float(buf, pos, n)
            if not ok:
                return False, nnz, is_sorted
            if pos < n and not (buf[pos] == _SPACE or buf[pos] == _TAB or buf[pos] == _CR or buf[pos] == _LF):
                return False, nnz, is_sorted
            if label >= n_cols or nnz >= indices.shape[0]:
                return False, nnz, is_sorted
            if not use_seen and label <= last:  # first descent in this row: switch to the table
                is_sorted = False
                use_seen = True
                for k in range(row_start, nnz):
                    seen[indices[k]] = row
            if use_seen:
                if seen[label] == row:
                    return False, nnz, is_sorted
                seen[label] = row
            last = label
            indices[nnz] = label
            data[nnz] = value
            nnz += 1
        indptr[row + 1] = nnz
        if pos < n:
            pos += 1  # the line feed
    while pos < n:  # only blank space may follow the last row
        if not (buf[pos] == _SPACE or buf[pos] == _TAB or buf[pos] == _CR or buf[pos] == _LF):
            return False, nnz, is_sorted
        pos += 1
    return True, nnz, is_sorted


@nb.njit(cache=True, nogil=True)
def _ndigits(x):  # pragma: no cover - compiled
    d = 1
    while x >= 10:
        x //= 10
        d += 1
    return d


@nb.njit(cache=True, nogil=True)
def row_bytes(indptr, indices, value_ids, value_len, r0, r1):  # pragma: no cover - compiled
    """Bytes that rows ``[r0, r1)`` take as text: ``label:value`` tokens, spaces, one line feed per row."""
    total = 0
    for r in range(r0, r1):
        for k in range(indptr[r], indptr[r + 1]):
            total += _ndigits(indices[k]) + 1 + value_len[value_ids[k]] + 1
        if indptr[r + 1] == indptr[r]:
            total += 1
    return total


@nb.njit(cache=True, nogil=True)
def format_rows(indptr, indices, value_ids, value_bytes, value_off, r0, r1, out):  # pragma: no cover - compiled
    """Write rows ``[r0, r1)`` into ``out`` (uint8, sized by :func:`row_bytes`); returns bytes written.

    ``value_bytes[value_off[j]:value_off[j + 1]]`` is the text of distinct value ``j``; ``value_ids[k]``
    names the distinct value of stored entry ``k``.
    """
    p = 0
    for r in range(r0, r1):
        start = indptr[r]
        stop = indptr[r + 1]
        for k in range(start, stop):
            label = indices[k]
            d = _ndigits(label)
            for j in range(d - 1, -1, -1):
                out[p + j] = 48 + label % 10
                label //= 10
            p += d
            out[p] = _COLON
            p += 1
            v = value_ids[k]
            for j in range(value_off[v], value_off[v + 1]):
                out[p] = value_bytes[j]
                p += 1
            out[p] = _SPACE if k + 1 < stop else _LF
            p += 1
        if stop == start:
            out[p] = _LF
            p += 1
    return p
