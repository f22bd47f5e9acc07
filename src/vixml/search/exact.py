"""Exact (and half-precision) blocked top-k maximum inner product search on CPU or GPU.

``topk(queries, labels, k)`` returns, for every query row, the ``k`` labels with the largest inner
product. Memory stays bounded whatever the sizes: queries are taken ``block_queries`` rows at a time,
labels ``block_labels`` rows at a time (converted to the compute dtype/device a bounded chunk at a
time), and the only full-size arrays are the outputs.

Per (query block, label block): one score block from :class:`vixml.search.blocks.LabelBlocks`
(oneDNN float32 / bfloat16 on CPU, cuBLAS on GPU), then a running top-k that never sorts the block:
on CPU per-row reservoirs filled by a numba kernel (:mod:`vixml.search.reservoir`), on GPU group
maxima + pruning in torch (:mod:`vixml.search.selection`). A plain ``matmul`` + ``torch.topk`` loop
spends as long in ``topk`` as in the matmul on CPU; here the selection costs about a tenth of it.

Precisions:
    ``"fp32"``: exact float32 scores; ties broken by lower label id.
    ``"bf16-rescore"``: score in bfloat16 to pick a shortlist of ``2k`` labels (``k + max(16, k)``),
        then re-score the shortlist in float32 (returned scores are float32 dot products, ties by
        lower id). About 1.6x faster than fp32 on CPUs with AVX512-BF16 (bf16 GEMM runs at twice
        the float32 rate there) and on GPUs. Recall@k against exact: 1.0 on random unit vectors,
        >= 0.9999 on clustered ones (see ``benchmarks/bench_search.py``); a label can be missed only
        if its bf16 score falls below the ``2k``-th best, i.e. among near-ties. On a CPU that emulates
        bf16 (no AVX512_BF16/AMX, :func:`vixml.devices.native_bf16`) it searches in ``"fp32"``
        instead, exact and many times faster there, and logs it once.
    ``"int8-rescore"`` (CPU): as ``bf16-rescore``, the shortlist scored by an int8 product instead (labels
        quantised per row, queries per block, int32 sums: fbgemm/oneDNN through torch's dynamic quantised
        linear, which uses VNNI/AMX-INT8 where the CPU has them). Returned scores are exact float32.
    ``"bf16"`` / ``"fp16"``: score and select in half precision; scores returned as float32 copies
        of the half values (ties by lower id on CPU, in any order on GPU). ``"fp16"`` needs CUDA
        (CPU float16 matmul is orders of magnitude slower than float32).

Inputs must be finite: a NaN score is never selected on CPU (its label would never be predicted, its
query would get nothing) and its fate is unspecified on GPU, so non-finite rows are refused with a
:class:`~vixml.errors.DataError` naming them. The check reads both inputs once; a caller that searches
the same validated labels again and again (a server) passes ``check_finite="queries"``.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from vixml.devices import native_bf16
from vixml.errors import ConfigError, DataError, Problem
from vixml.finite import nonfinite_problem
from vixml.memory_fit import budget, gib, give_back_freed
from vixml.search.blocks import LabelBlocks, onednn_available
from vixml.search.gemm import BACKENDS
from vixml.search.reservoir import Reservoir, RowPool
from vixml.search.selection import RunningTopK, best_of

if TYPE_CHECKING:
    import torch

__all__ = [
    "topk",
    "Precision",
    "PRECISIONS",
    "BACKENDS",
    "default_blocks",
    "label_chunk_bytes",
    "shortlist_margin",
    "ONEDNN_MIN_QUERIES",
]

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16-rescore", "int8-rescore", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
FiniteCheck = Literal["all", "queries", "none"]

#: Converted (dtype or device) label rows kept at once; labels beyond it are converted chunk by chunk.
_CHUNK_BYTES_CPU = 1 << 30
_CHUNK_BYTES_GPU = 4 << 30
#: bf16-rescore shortlist: k + max(_MARGIN_MIN, ceil(_MARGIN_FRACTION * k)) labels per query.
_MARGIN_MIN = 16
_MARGIN_FRACTION = 1.0
#: Fewest queries for which copying the labels into oneDNN's layout pays off (CPU float32).
ONEDNN_MIN_QUERIES = 256
#: The CPU reservoirs pack label ids into 32 bits.
_MAX_CPU_LABELS = 2**32 - 1
#: Bytes of gathered float32 label vectors per re-scoring step.
_RESCORE_BYTES = 64 << 20


def default_blocks(device: torch.device | str) -> tuple[int, int]:
    """Default (block_queries, block_labels) for a device.

    CPU: a score block of 256 x 8192 float32 (8 MiB) stays in the last-level cache between the
    matmul that writes it and the selection that reads it, and is large enough for the GEMM to run
    near peak; 16 MiB blocks were slower (oneDNN allocates each output afresh) and 128-row blocks
    starve the GEMM (measured on a 2-core AVX-512 machine). GPU: larger blocks to fill the device;
    a 2048 x 32768 float32 block is 256 MiB.
    """
    import torch

    if torch.device(device).type == "cuda":
        return 2048, 32768
    return 256, 8192


def topk(
    queries,
    labels,
    k: int,
    *,
    device: torch.device | str | None = None,
    precision: Precision = "fp32",
    block_queries: int | None = None,
    block_labels: int | None = None,
    progress: bool = False,
    check_finite: FiniteCheck = "all",
    backend: str | None = None,
):
    """Top-``k`` labels by inner product for every query, exact and memory-bounded.

    Args:
        queries: (n, d) float array: numpy array (np.memmap included) or torch tensor.
        labels: (L, d) float array of the same kinds; read block by block (a memmap is never loaded whole).
        k: number of labels per query. If ``k > L`` the extra columns are padding: score ``-inf``,
            index ``-1``.
        device: where to compute. ``None``: the device of a CUDA tensor among the inputs, else CUDA if
            available, else CPU.
        precision: ``"fp32"`` (exact), ``"bf16-rescore"``, ``"bf16"`` or ``"fp16"`` (see the module doc).
        block_queries: query rows per block (default: :func:`default_blocks`).
        block_labels: label rows per block (default: :func:`default_blocks`).
        progress: show a tqdm bar over query blocks.
        check_finite: refuse NaN/inf rows of ``"all"`` inputs, of the ``"queries"`` only (labels validated
            before), or ``"none"`` (both validated by the caller).
        backend: the CPU float32 product: ``onednn``, ``torch``, ``numpy`` or ``faiss`` (its own flat search);
            None: the fastest on this machine (:mod:`vixml.search.gemm`, measured once and cached).

    Returns:
        (scores, indices): (n, k) float32 scores, descending per row, and (n, k) int64 label ids;
        among equal scores the lower label id comes first (``"fp32"`` and ``"bf16-rescore"``).
        numpy arrays, or torch tensors on the queries' device when ``queries`` is a torch tensor.

    In a process that has not loaded torch (a server of an export: ``vixml[serve-onnx]``), a CPU search runs
    in numpy (:func:`_topk_numpy`, fp32) rather than load torch for it.

    Raises:
        ConfigError: bad ``k``, ``precision``, block sizes, or ``"fp16"`` without a GPU.
        DataError: inputs that are not 2-D float arrays with the same width, or that hold NaN/inf values
            (the first rows named).
    """
    _check_args(k, precision, block_queries, block_labels)
    if check_finite not in ("all", "queries", "none"):
        raise ConfigError(f"check_finite must be 'all', 'queries' or 'none', got {check_finite!r}")
    if "torch" not in sys.modules and str(device or "cpu") == "cpu" and precision != "fp16":
        return _topk_numpy(queries, labels, int(k), check_finite, block_queries or 256)
    import torch

    return_torch = isinstance(queries, torch.Tensor)
    q = _as_tensor(queries, "queries")
    lab = _as_tensor(labels, "labels")
    _check_shapes(q, lab)
    _refuse_nonfinite(q, lab, check_finite)
    dev = _resolve_device(device, q, lab)
    precision = _native_precision(precision, dev)
    if precision == "fp16" and dev.type != "cuda":
        raise ConfigError(
            "precision='fp16' needs a CUDA device (float16 matmul on CPU is about 100x slower than float32); "
            "use precision='bf16-rescore' or 'bf16' on CPU"
        )
    if dev.type == "cpu" and lab.shape[0] > _MAX_CPU_LABELS:
        raise ConfigError(f"CPU search handles up to {_MAX_CPU_LABELS} labels, got {lab.shape[0]}; split them")
    out_dev = q.device if return_torch else torch.device("cpu")
    k = int(k)
    n, n_labels = q.shape[0], lab.shape[0]
    out_v = torch.full((n, k), float("-inf"), dtype=torch.float32, device=out_dev)
    out_i = torch.full((n, k), -1, dtype=torch.int64, device=out_dev)
    k_eff = min(k, n_labels)
    if n and k_eff:
        bq, bl = default_blocks(dev)
        bq, bl = block_queries or bq, block_labels or bl
        shape = f"{n}x{n_labels} k={k} {precision} on {dev}, blocks {bq}x{bl}, {torch.get_num_threads()} threads"
        logger.debug("topk %s", shape)
        backend = _backend(backend, dev, precision, n, lab)
        with torch.inference_mode():
            if backend == "faiss":
                _faiss_search(q, lab, k_eff, bq, out_v[:, :k_eff], out_i[:, :k_eff])
            else:
                _search(q, lab, k_eff, dev, precision, bq, bl, progress, out_v[:, :k_eff], out_i[:, :k_eff], backend)
    if return_torch:
        return out_v, out_i
    return out_v.numpy(), out_i.numpy()


def _native_precision(precision: str, dev) -> str:
    """bf16-rescore -> fp32 where bf16 is emulated (CPUs without AVX512_BF16/AMX): the same answer, faster."""
    if precision not in ("bf16-rescore", "bf16") or dev.type != "cpu" or native_bf16(dev):
        return precision
    if precision == "bf16":  # scores in bf16 were asked for: keep them, say what they cost
        _say_once("bf16", logging.WARNING, "search precision 'bf16' on a CPU that emulates bf16 is slow; use fp32")
        return precision
    _say_once(
        "bf16-rescore",
        logging.INFO,
        "search precision 'bf16-rescore' -> 'fp32': this CPU emulates bf16 (no AVX512_BF16/AMX), fp32 is faster "
        "here and exact",
    )
    return "fp32"


_said: set[str] = set()


def _say_once(key: str, level: int, message: str) -> None:
    if key not in _said:
        _said.add(key)
        logger.log(level, message)


@dataclass
class _Plan:
    """What every block of one ``topk`` call shares."""

    k: int
    device: torch.device
    precision: str
    dtype: torch.dtype
    block_queries: int
    block_labels: int
    backend: str
    buffer: torch.Tensor  # flat, reused for score blocks
    pool: RowPool
    bar: object | None


def _search(q, lab, k, dev, precision, bq, bl, progress, out_v, out_i, backend: str = "torch") -> None:
    """Fill ``out_v`` / ``out_i`` ((n, k) on the output device) chunk by chunk, block by block.

    The CPU selection runs on half of torch's threads: right after each matmul torch's OpenMP
    workers keep spinning for a while (milliseconds), so more selection threads only compete with
    them. Measured on 2 cores: one selection thread was as fast as two on an idle machine and
    10-30% faster when other processes were running.
    """
    import torch

    dtype = {"fp32": torch.float32, "int8-rescore": torch.float32, "fp16": torch.float16}.get(
        precision, torch.bfloat16
    )
    n = q.shape[0]
    onednn = backend in ("onednn", "int8")  # both hold converted copies of the labels
    chunks = list(_chunk_ranges(lab, dev, dtype, onednn))
    buffer = torch.empty(bq * min(bl, lab.shape[0]), dtype=dtype, device=dev)
    workers = max(1, torch.get_num_threads() // 2) if dev.type == "cpu" else 1
    with RowPool(workers) as pool:
        bar = _progress(progress, len(chunks) * math.ceil(n / bq))
        plan = _Plan(k, dev, precision, dtype, bq, bl, backend, buffer, pool, bar)
        for start, end in chunks:
            _search_chunk(plan, q, lab, start, end, out_v, out_i)
            if len(chunks) > 1 or onednn:
                give_back_freed()  # the chunk's converted labels, before the next chunk or the caller's work
        if bar is not None:
            bar.close()


def _search_chunk(plan: _Plan, q, lab, start: int, end: int, out_v, out_i) -> None:
    """Every query block against labels ``[start, end)``, carrying the result of earlier chunks."""
    import torch

    blocks = LabelBlocks(lab, start, end, plan.device, plan.dtype, plan.block_labels, backend=plan.backend)
    for q0 in range(0, q.shape[0], plan.block_queries):
        q1 = min(q0 + plan.block_queries, q.shape[0])
        prepared = blocks.queries(q[q0:q1])
        carry = (out_v[q0:q1], out_i[q0:q1]) if start > 0 else None
        if plan.precision in ("bf16-rescore", "int8-rescore"):
            short = _selector(plan, q1 - q0, min(plan.k + shortlist_margin(plan.k), end - start))
            _scan(prepared, blocks, plan.buffer, short)
            shortlist = torch.as_tensor(short.finish()[1]).to(plan.device)
            values, indices = _rescore(q[q0:q1], lab, shortlist, plan)
            if carry is not None:
                values = torch.cat([carry[0].to(plan.device), values], dim=1)
                indices = torch.cat([carry[1].to(plan.device), indices], dim=1)
            values, indices = best_of(values, indices, plan.k)
        else:
            state = _selector(plan, q1 - q0, plan.k)
            if carry is not None:
                state.seed(*_like(state, carry))
            _scan(prepared, blocks, plan.buffer, state)
            values, indices = (torch.as_tensor(x) for x in state.finish())
        out_v[q0:q1] = values.to(out_v.device, torch.float32)
        out_i[q0:q1] = indices.to(out_i.device)
        if plan.bar is not None:
            plan.bar.update(1)


def _backend(asked: str | None, dev, precision: str, n: int, lab) -> str:
    """The product of this search: float32 on CPU takes the asked or measured backend, the rest ``torch``."""
    import torch

    if precision == "int8-rescore":
        if dev.type != "cpu" or asked not in (None, "int8"):
            raise ConfigError(f"precision 'int8-rescore' runs on CPU with its own product, not {asked or dev}")
        return "int8"
    if dev.type != "cpu" or precision != "fp32":
        if asked not in (None, "torch"):
            raise ConfigError(f"backend {asked!r} is for exact fp32 search on CPU, not {precision} on {dev}")
        return "torch"
    if asked is None:
        from vixml.search.gemm import choice

        asked = choice(lab.shape[1]).for_queries(n)
    if asked not in BACKENDS:
        raise ConfigError(f"unknown search backend {asked!r}; valid: {', '.join(BACKENDS)}")
    if asked == "onednn" and not onednn_available():
        raise ConfigError("backend 'onednn' needs torch built with oneDNN (mkldnn), and this one is not")
    if asked == "onednn" and n < ONEDNN_MIN_QUERIES:
        return "torch"  # copying the labels into oneDNN's layout does not pay for few queries
    if asked == "faiss" and not (lab.dtype == torch.float32 and lab.is_contiguous()):
        return "numpy"  # faiss reads one contiguous float32 array; chunked conversion is ours
    return asked


def _faiss_search(q, lab, k: int, bq: int, out_v, out_i) -> None:
    """faiss's brute-force inner-product search, made to answer as ours: ties by lower id.

    faiss is asked for a margin more than ``k`` and each row re-sorted by (score, id); a row whose tie at
    the ``k``-th score reaches the end of the margin (ties faiss may have cut anywhere) is searched again by
    the numpy backend.
    """
    import faiss

    labels = lab.numpy()
    margin = min(k + shortlist_margin(k), labels.shape[0])
    step = max(bq, 1024)
    for q0 in range(0, q.shape[0], step):
        rows = np.ascontiguousarray(q[q0 : q0 + step].to(dtype=lab.dtype).numpy())
        scores, ids = faiss.knn(rows, labels, margin, metric=faiss.METRIC_INNER_PRODUCT)
        order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores.astype(np.float64)), axis=1)
        scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        out_v[q0 : q0 + rows.shape[0]] = _torch_from(scores[:, :k])
        out_i[q0 : q0 + rows.shape[0]] = _torch_from(ids[:, :k].astype(np.int64))
        if margin < labels.shape[0]:
            unsure = np.flatnonzero(scores[:, k - 1] == scores[:, margin - 1])
            if unsure.size:
                again_v, again_i = topk(rows[unsure], labels, k, device="cpu", check_finite="none", backend="numpy")
                out_v[q0 + unsure] = _torch_from(again_v)
                out_i[q0 + unsure] = _torch_from(again_i)


def _torch_from(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _selector(plan: _Plan, rows: int, k: int):
    """The running top-k for one query block: numba reservoirs on CPU, torch selection on GPU."""
    import torch

    if plan.device.type == "cpu":
        return Reservoir(rows, k, plan.pool)
    return RunningTopK(rows, k, plan.dtype, plan.device, exact_ties=plan.dtype == torch.float32)


def _like(state, carry):
    """A carried (values, indices) pair in the form ``state.seed`` takes."""
    if isinstance(state, Reservoir):
        return carry[0].cpu().numpy(), carry[1].cpu().numpy()
    return carry


def _scan(prepared, blocks: LabelBlocks, buffer, state) -> None:
    """Push the score blocks of one query block against every label block into ``state``."""
    for i, offset in enumerate(blocks.offsets):
        state.push(blocks.scores(prepared, i, buffer), offset)


def _rescore(q_rows, lab, shortlist, plan: _Plan):
    """Exact float32 scores of the shortlisted labels.

    Args:
        q_rows: (r, d) queries of the block (source dtype and device).
        lab: (L, d) source labels (a memmap stays a memmap: only the listed rows are read).
        shortlist: (r, s) int64 label ids on the plan's device (``-1`` for padding).

    Returns:
        (values (r, s) float32 with -inf at padding, indices (r, s) int64) on the plan's device.
    """
    import torch

    dev = plan.device
    r, s = shortlist.shape
    d = lab.shape[1]
    values = torch.full((r, s), float("-inf"), dtype=torch.float32, device=dev)
    if dev.type == "cpu" and lab.device.type == "cpu" and lab.dtype == torch.float32 and lab.is_contiguous():
        qf = q_rows.to(torch.float32).contiguous().numpy()
        plan.pool.map_rows(_rescore_rows, r, (qf, shortlist.numpy(), values.numpy()), lab.numpy())
        return values, shortlist
    step = max(1, _RESCORE_BYTES // max(1, s * d * 4))
    for a in range(0, r, step):
        ids = shortlist[a : a + step]
        qf = q_rows[a : a + step].to(device=dev, dtype=torch.float32)
        flat = ids.clamp(min=0).reshape(-1).to(lab.device)
        vectors = lab.index_select(0, flat).to(device=dev, dtype=torch.float32).view(ids.shape[0], s, d)
        values[a : a + step] = torch.bmm(vectors, qf.unsqueeze(2)).squeeze(2)
    return values.masked_fill_(shortlist < 0, float("-inf")), shortlist


def _rescore_rows(queries, ids, out, labels) -> None:
    from vixml.search import _kernels

    _kernels.rescore(queries, labels, ids, out)


def shortlist_margin(k: int) -> int:
    return max(_MARGIN_MIN, math.ceil(_MARGIN_FRACTION * k))


def _chunk_ranges(lab, dev, cdtype, onednn: bool) -> Iterator[tuple[int, int]]:
    """Label row ranges held at once: all of them when holding them copies nothing."""
    n_labels, d = lab.shape
    copies = onednn or lab.device != dev or lab.dtype != cdtype or not lab.is_contiguous()
    if not copies:
        yield 0, n_labels
        return
    rows = max(1, label_chunk_bytes(dev) // max(1, d * cdtype.itemsize))
    for start in range(0, n_labels, rows):
        yield start, min(start + rows, n_labels)


def label_chunk_bytes(dev) -> int:
    """Converted label bytes held at once: 1 GiB on CPU, or a quarter of the memory available when that is
    less (logged once); 4 GiB on GPU (device memory, not checked here)."""
    if dev.type == "cuda":
        return _CHUNK_BYTES_GPU
    chosen = budget(_CHUNK_BYTES_CPU)
    if chosen < _CHUNK_BYTES_CPU:
        _say_once(
            "chunk",
            logging.INFO,
            f"search: label chunks of {gib(chosen)} instead of {gib(_CHUNK_BYTES_CPU)}, to fit the memory available",
        )
    return chosen


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="top-k", unit="block")


def _check_args(k, precision, block_queries, block_labels) -> None:
    problems = []
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        problems.append(f"k must be an integer >= 1, got {k!r}")
    if precision not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    for name, value in (("block_queries", block_queries), ("block_labels", block_labels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            problems.append(f"{name} must be a positive integer or None, got {value!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def _topk_numpy(queries, labels, k: int, check_finite: str, block_queries: int, block_labels: int = 32768):
    """``topk`` in numpy float32 (no torch): blocks of queries x labels, a partial sort per block, ties by id.

    A label block's scores are (block_queries x block_labels) float32 (32 MiB); the labels (fp16 on disk
    too) are converted one block at a time, so a memmap is never loaded whole.
    """
    q, lab = _as_array(queries, "queries"), _as_array(labels, "labels")
    _check_shapes(q, lab)
    _refuse_nonfinite(q, lab, check_finite)
    n, n_labels = q.shape[0], lab.shape[0]
    out_v = np.full((n, k), -np.inf, dtype=np.float32)
    out_i = np.full((n, k), -1, dtype=np.int64)
    k_eff = min(k, n_labels)
    for qs in range(0, n if k_eff else 0, block_queries):
        qb = np.asarray(q[qs : qs + block_queries], dtype=np.float32)
        values, ids = np.zeros((len(qb), 0), np.float32), np.zeros((len(qb), 0), np.int64)
        for ls in range(0, n_labels, block_labels):
            scores = qb @ np.asarray(lab[ls : ls + block_labels], dtype=np.float32).T
            keep = min(k_eff, scores.shape[1])
            part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            _lowest_ids_at_the_cut(scores, part)
            values = np.concatenate([values, np.take_along_axis(scores, part, axis=1)], axis=1)
            ids = np.concatenate([ids, part + ls], axis=1)
        order = np.lexsort((ids, -values), axis=1)[:, :k_eff]  # by score, then by lower id
        out_v[qs : qs + len(qb), :k_eff] = np.take_along_axis(values, order, axis=1)
        out_i[qs : qs + len(qb), :k_eff] = np.take_along_axis(ids, order, axis=1)
    return out_v, out_i


def _lowest_ids_at_the_cut(scores: np.ndarray, part: np.ndarray) -> None:
    """Where equal scores straddle the partition's cut, keep the lowest ids among them (in place; rare rows)."""
    keep = part.shape[1]
    cut = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    kept = (np.take_along_axis(scores, part, axis=1) == cut).sum(axis=1)
    for row in np.nonzero((scores == cut).sum(axis=1) > kept)[0]:
        greater = np.nonzero(scores[row] > cut[row])[0]
        equal = np.nonzero(scores[row] == cut[row])[0][: keep - len(greater)]
        part[row] = np.concatenate([greater, equal])


def _as_array(x, name: str) -> np.ndarray:
    """A numpy array / memmap checked to be 2-D float (the torch-free twin of :func:`_as_tensor`)."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f" or arr.ndim != 2:
        raise DataError(Problem(f"<{name}>", f"expected a 2-D float array, got {arr.ndim}-D {arr.dtype}", field=name))
    return arr


def _as_tensor(x, name: str):
    """A torch view of a numpy array / memmap (no copy) or the tensor itself, checked to be 2-D float."""
    import torch

    if not isinstance(x, torch.Tensor):
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.dtype.kind != "f" or arr.ndim != 2:
            raise DataError(
                Problem(f"<{name}>", f"expected a 2-D float array, got {arr.ndim}-D {arr.dtype}", field=name)
            )
        if not arr.flags.c_contiguous and not arr.flags.f_contiguous:
            arr = np.ascontiguousarray(arr)
        with warnings.catch_warnings():  # read-only memmaps: we never write into them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(arr)
    if not x.is_floating_point() or x.dim() != 2:
        raise DataError(Problem(f"<{name}>", f"expected a 2-D float tensor, got {x.dim()}-D {x.dtype}", field=name))
    return x.detach()


def _refuse_nonfinite(q, lab, check_finite: str) -> None:
    """NaN/inf rows of the inputs ``check_finite`` names (numpy arrays or tensors), refused with the rows named."""
    found = [] if check_finite == "none" else [nonfinite_problem(q, "<queries>", "query embeddings")]
    if check_finite == "all":
        found.append(nonfinite_problem(lab, "<labels>", "label embeddings"))
    if problems := [p for p in found if p is not None]:
        raise DataError(problems)


def _check_shapes(q, lab) -> None:
    if q.shape[1] != lab.shape[1]:
        raise DataError(
            Problem("<queries>", f"width {q.shape[1]} differs from the labels' width {lab.shape[1]}", field="shape")
        )


def _resolve_device(device, q, lab):
    import torch

    if device is not None:
        return torch.device(device)
    for x in (lab, q):
        if x.device.type == "cuda":
            return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
