"""Host memory a training run holds beyond its dataset, estimated before anything is written or loaded.

A run that would not fit must say so before it starts, not be killed at its first evaluation an hour in.
What a rank holds in host memory at its peak, from the dataset's sizes (N training queries, L labels,
T test queries, D the embedding width):

- the query bank, (N, D) float32, on the host unless it lives on the GPU (it does when it takes less
  than a quarter of the GPU's free memory);
- on a CPU device, the model's weights, PRIME centroids and AdamW moments, as
  :func:`vixml.models.estimate_memory` counts them for a GPU;
- the largest of the phases, which never overlap: a training step (on a CPU, its gradients and
  activations); refilling the bank (the (N, D) embeddings gathered before they are copied in, and the PRIME
  centroids' (L, N) label-by-query matrix and (L, D) result); NGAME clustering (the bank rows of queries
  with labels, (N, D); the clustering itself works in place); PRIME's start (the (L, D) label
  embeddings); evaluation (the (T, D) test and two (L, D) label embeddings, the search and its CSR).

Ranks on one machine each hold their bank and model, and run the steps, the refills and PRIME's start at
the same time; clustering and evaluation run on rank 0 alone. Against the measured growth of a CPU run's
phases beyond its loaded dataset (AMD EPYC, AVX-512 + AVX512_BF16, 2 cores, fp32; 100,000 queries, 50,000
labels, 20,000 test queries, a 1-layer 384-wide BERT, PRIME and NGAME): 1.07-1.10x at batch 128 (evaluation
the largest phase), 1.11x at 512 and 1.14x at 2048 (a training step the largest).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from vixml.config import RunConfig
    from vixml.data import XMCDataset

__all__ = ["training_need", "WORKING_BYTES"]

#: A training process's working memory beside the arrays counted here (the sampler's and the tokenised
#: splits' arrays, oneDNN and autograd scratch): what the measured peaks exceeded the counted arrays by.
WORKING_BYTES = 256 << 20

logger = logging.getLogger(__name__)


def training_need(
    cfg: RunConfig, dataset: XMCDataset, device: torch.device, *, local_ranks: int = 1, ranks: int = 1
) -> tuple[int, str]:
    """``(bytes, what)``: the host memory a run adds to its loaded dataset on this machine, at its peak.

    Args:
        cfg: the run's configuration (backbone, batch, prototypes, mining, evaluation depth).
        dataset: the loaded dataset (its sizes; what it holds is counted by its loader's check).
        device: the training device: on a CPU the model's training state is host memory too.
        local_ranks: processes of the launch on this machine (each holds its bank and model).
        ranks: processes of the whole launch (each encodes ``batch_size / ranks`` queries per step).
    """
    from vixml.models.memory import estimate_memory
    from vixml.models.model_shapes import backbone_shape
    from vixml.search import search_memory, to_csr_memory

    n, labels, tests = dataset.n_train, dataset.n_labels, dataset.n_test
    try:
        hidden = backbone_shape(cfg.model.name_or_path, kind=cfg.model.kind).hidden_size
        estimate = estimate_memory(cfg, batch_size=max(2, cfg.train.batch_size // ranks), num_labels=labels)
    except Exception as exc:  # a backbone the estimator cannot read: no check rather than a failed run
        logger.debug("training memory not estimated: %s", exc)
        return 0, ""
    dim = cfg.model.transform or hidden
    row, cpu = 4 * dim, device.type == "cpu"
    bank = n * row if cpu or not _bank_fits_gpu(n * row, device) else 0
    # on a CPU the model is host memory: its weights, PRIME centroids and AdamW moments stay; a step adds
    # the gradients and activations of its micro-batch, freed before the phases between steps
    kept = estimate.weights + estimate.centroids + estimate.optimizer_states if cpu else 0
    # (bytes, on every local rank or on rank 0 alone) of each phase
    phases = {"a training step": (estimate.peak - kept if cpu else 0, True)}
    refill = n * row
    if cfg.prototypes is not None:
        refill += 12 * dataset.trn_Y.nnz + 8 * labels + labels * row
        phases["PRIME's start"] = (labels * row, True)
    phases["refilling the query bank"] = (refill, True)
    if cfg.mining is not None:
        phases["clustering the query bank"] = (n * row, False)
    if tests:
        k = cfg.eval.topk
        search = search_memory(tests, labels, dim, k, device=device.type)
        phases["evaluation"] = (tests * row + 2 * labels * row + search + to_csr_memory(tests, k), False)
    sized = {name: size * (local_ranks if everywhere else 1) for name, (size, everywhere) in phases.items()}
    phase = max(sized, key=sized.get)
    need = local_ranks * (bank + kept + WORKING_BYTES) + sized[phase]
    what = (
        f"training {n:,} queries and {labels:,} labels of width {dim}: the query bank"
        f"{'' if bank else ' (on the GPU)'}"
        + (", the model's weights and AdamW state on the CPU" if kept else "")
        + f", {phase} at its peak"
        + (f", on {local_ranks} ranks on this machine" if local_ranks > 1 else "")
    )
    return need, what


def _bank_fits_gpu(size: int, device: torch.device) -> bool:
    """The trainer's rule (``_query_bank``): on the GPU when it takes under a quarter of its free memory."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return size < free // 4
