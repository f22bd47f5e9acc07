"""Label blocks held in the form that multiplies fastest on the device, and the score-block product.

On CPU, float32 products go through one of three backends: oneDNN (``Tensor.to_mkldnn`` +
``torch.nn.functional.linear``: on the Intel AVX-512 machine of ``benchmarks/bench_search.py`` about twice
``torch.matmul``'s MKL sgemm), ``torch.matmul``, or numpy's BLAS (OpenBLAS: the fastest on an AMD Zen 4);
:mod:`vixml.search.gemm` measures which wins on a machine. bfloat16 products go to oneDNN through
``torch.matmul``. On GPU the labels are simply moved to the device in the compute dtype, block by block.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["LabelBlocks", "onednn_available"]

logger = logging.getLogger(__name__)


@functools.cache
def onednn_available() -> bool:
    """Whether float32 oneDNN products work here (torch built with mkldnn, and a trial product succeeds)."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.inference_mode():
            a, b = torch.ones(2, 8), torch.ones(3, 8)
            product = torch.nn.functional.linear(a.to_mkldnn(), b.to_mkldnn()).to_dense()
        return bool(torch.equal(product, torch.full((2, 3), 8.0)))
    except (RuntimeError, NotImplementedError) as exc:  # pragma: no cover - depends on the torch build
        logger.debug("oneDNN float32 products unavailable: %s", exc)
        return False


class LabelBlocks:
    """Rows ``[start, end)`` of the labels as blocks of ``block_rows``, ready to score queries against.

    Args:
        labels: (L, d) source tensor (CPU or GPU, any float dtype; a numpy memmap viewed as a tensor).
        start, end: the label rows to hold.
        device: compute device.
        dtype: compute dtype (float32, bfloat16 or float16).
        block_rows: labels per block.
        backend: the product: ``torch`` (``torch.matmul``: MKL on CPU, cuBLAS on GPU), ``onednn`` (CPU float32
            through ``to_mkldnn``), ``numpy`` (CPU float32: numpy's BLAS, OpenBLAS in the wheels) or ``int8``
            (approximate: labels quantised to int8, torch's dynamic quantised linear); None:
            ``onednn`` for CPU float32 when :func:`onednn_available`, else ``torch``
            (:mod:`vixml.search.gemm` measures which is fastest on a machine).

    Holding the blocks copies the rows (at most ``end - start`` of them) unless they already are a
    contiguous tensor on ``device`` in ``dtype`` and the backend is not oneDNN.
    """

    def __init__(self, labels, start: int, end: int, device, dtype, block_rows: int, backend: str | None = None):
        import torch

        self.device = torch.device(device)
        self.dtype = dtype
        cpu32 = self.device.type == "cpu" and dtype == torch.float32
        if backend is None:
            backend = "onednn" if cpu32 and onednn_available() else "torch"
        if backend in ("onednn", "numpy", "int8") and not cpu32:
            raise ValueError(f"the {backend} product is for float32 on CPU, not {dtype} on {self.device}")
        self.backend = backend
        self.offsets: list[int] = []
        self.blocks: list = []
        for lo in range(start, end, block_rows):
            hi = min(lo + block_rows, end)
            block = labels[lo:hi].to(device=self.device, dtype=dtype).contiguous()
            self.offsets.append(lo)
            self.blocks.append(self._prepare(block))

    @property
    def onednn(self) -> bool:
        return self.backend == "onednn"

    def _prepare(self, block):
        if self.backend == "onednn":
            return block.to_mkldnn()
        if self.backend == "int8":
            return _int8_weights(block)
        if self.backend == "numpy":
            return block.numpy()
        return block

    def __len__(self) -> int:
        return len(self.blocks)

    def queries(self, rows: torch.Tensor):
        """A query block (r, d) in the form :meth:`scores` takes."""
        block = rows.to(device=self.device, dtype=self.dtype).contiguous()
        return block if self.backend == "int8" else self._prepare(block)

    def scores(self, queries, i: int, buffer: torch.Tensor) -> torch.Tensor:
        """(r, n) scores of prepared ``queries`` against block ``i``: a contiguous tensor in ``dtype``.

        Args:
            queries: from :meth:`queries`.
            i: block number.
            buffer: flat tensor of at least ``r * n`` elements in ``dtype`` on the device, reused for
                the output when the product can write into it (not with oneDNN, which allocates).
        """
        import numpy as np
        import torch

        block = self.blocks[i]
        if self.backend == "onednn":
            return torch.nn.functional.linear(queries, block).to_dense()
        if self.backend == "int8":  # approximate scores: a shortlist to rescore exactly
            return torch.ops.quantized.linear_dynamic(queries, block, True)
        r, n = queries.shape[0], block.shape[0]
        out = buffer[: r * n].view(r, n)
        if self.backend == "numpy":
            np.matmul(queries, block.T, out=out.numpy())
        else:
            torch.matmul(queries, block.T, out=out)
        return out


def _int8_weights(block):
    """A float32 label block as packed int8 weights (symmetric, one scale per label) for the dynamic int8
    product; ``reduce_range`` keeps the 7-bit activations that CPUs without VNNI need to avoid overflow."""
    import warnings

    import torch

    scale = (block.abs().amax(dim=1) / 127).clamp(min=1e-12).to(torch.float64)
    zero = torch.zeros(block.shape[0], dtype=torch.int64)
    with warnings.catch_warnings():  # torch announces a successor (torchao) for these quantised tensors
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*deprecated", category=UserWarning)
        weights = torch.quantize_per_channel(block, scale, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(weights, None)
