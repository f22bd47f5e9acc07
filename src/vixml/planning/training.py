"""Host memory a training run holds beyond its dataset, estimated before anything is written or loaded.

A run that would not fit must say so before it starts, not be killed at its first evaluation an hour in.
What a rank holds in host memory at its peak, from the dataset's sizes (N training queries, L labels,
T test queries, D the embedding width):

- the query bank, (N, D) float32, on the host unless it lives on the GPU (it does when it takes less
  than a quarter of the GPU's free memory);
- on a CPU device, the model's weights, PRIME centroids and AdamW moments, as
  :func:`vixml.planning.estimate_memory` counts them for a GPU;
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

A hybrid run (a ``sparse`` section) trains its sparse companion on rank 0 before the first step: one more
phase, and the trained companion is held for the rest of the run (:func:`sparse_need`). Its memory is
omikuji's forest: each training row's TF-IDF entries are copied into a node's classifiers on every level
of the tree the row reaches, so the forest grows with E x depth per tree, E the entries of the query texts
(``ngrams`` x their words, a word per 6 bytes of text) and depth ``log2(L / 100)`` (binary trees with
leaves of 100 labels). Measured (``benchmarks/bench_scale.py``, stages ``train_hybrid`` and
``train_sparse``, the synthetic LF-AmazonTitles-1.3M of scale 0.005 to 0.1, 11K-225K queries, 6.5K-131K
labels, default ``sparse`` section, 1 tree): the forest read back from disk took 155-176 bytes per query
entry per level with uniform random words, 183 with words of the labels' texts (``--texts related``): 192
are counted. Training holds the texts and TF-IDF matrix (90-110 bytes per entry of the query and label texts:
100 counted), the forest being built, and, at its end, both that forest and the copy read back from disk:
the phase's peak beyond the kept forest was 1.46-1.52x the forest (1.5x counted). Against the measured peak
of the companion's phase the estimate is 1.16-1.24x from 45K queries on (1.28x at 22K, 1.47x at 11K: fixed parts
dominate). Counted as upper bounds: label texts (their rows reach one leaf: ``label_texts=false`` shrank the
forest by 11%), unigrams (``ngrams=1``: 0.35-0.37x the forest with bigrams, counted 0.5x) and a vocabulary
cut by ``max_features`` (not counted: it drops rare bigrams, most of the entries of random words, few of
real titles'). Trees are counted as that many forests (not measured; omikuji trains them side by side).
``sparse.weight_threshold`` prunes small classifier weights: 0.3 made the forest 3x smaller at 2%, 0.5 made it
10x smaller at 5% (30-77x at 2%); counted as 1/3 at 0.3 and 1/10 from 0.5 on (log-linear between the measured
0.1, 0.3 and 0.5), and, not measured, 2.5x at 0 (nothing pruned). The measurements used binary trees
(``cluster_k`` 2, ``max_depth`` 20); the default 16-ary trees of depth 4 made a 0.64x forest at 2%: binary
depth is still counted (an upper bound).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vixml import distributed, memory_fit
from vixml.data.footprint import folder_need
from vixml.planning.fit import Need, Plan
from vixml.planning.search import search_memory, to_csr_memory

if TYPE_CHECKING:
    import torch

    from vixml.config import RunConfig, SparseConfig
    from vixml.data import XMCDataset
    from vixml.models import BackboneSpec

__all__ = [
    "training_plan",
    "training_need",
    "training_phases",
    "sparse_need",
    "TrainingMemory",
    "WORKING_BYTES",
]

#: A training process's working memory beside the arrays counted here (the sampler's and the tokenised
#: splits' arrays, oneDNN and autograd scratch): what the measured peaks exceeded the counted arrays by.
WORKING_BYTES = 256 << 20
#: The sparse companion (module docstring, measured): bytes of text per word; bytes per TF-IDF entry of the
#: training texts while the companion trains (texts, vocabulary, matrix); bytes of the trained forest per
#: entry of the query texts per tree level, per tree; the training's peak beyond the kept forest, in forests.
_SPARSE_BYTES_PER_WORD = 6
_SPARSE_TEXT_BYTES = 100
_SPARSE_FOREST_BYTES = 192
_SPARSE_TRAINING_FORESTS = 1.5
#: omikuji's leaves (its ``min_branch_size``): a tree over L labels is ``log2(L / 100)`` levels deep.
_SPARSE_LEAF_LABELS = 100

logger = logging.getLogger(__name__)


class TrainingMemory(NamedTuple):
    """What a run holds on this machine beyond its loaded dataset (:func:`training_phases`).

    Attributes:
        held: bytes kept for the whole run, on every local rank together: the query banks, on a CPU the
            models' training state, the working memory, the sparse companion once trained.
        phases: bytes each phase adds at its peak (on every local rank where every rank runs it).
        dim: the embedding width.
        bank_on_gpu: the query bank lives on the GPU.
    """

    held: int
    phases: dict[str, int]
    dim: int
    bank_on_gpu: bool


def training_phases(
    cfg: RunConfig,
    dataset: XMCDataset,
    device: torch.device,
    *,
    local_ranks: int = 1,
    ranks: int = 1,
    backbone: BackboneSpec | None = None,
) -> TrainingMemory | None:
    """What a run holds throughout and what each of its phases adds, on this machine (None: the backbone
    cannot be read by the estimator). The arguments are :func:`training_need`'s."""
    from vixml.planning.backbone import backbone_shape
    from vixml.planning.gpu import estimate_memory

    n, labels, tests = dataset.n_train, dataset.n_labels, dataset.n_test
    try:
        if backbone is not None:
            hidden = backbone.hidden_size
        else:
            hidden = backbone_shape(cfg.model.name_or_path, kind=cfg.model.kind).hidden_size
        batch = max(2, cfg.train.batch_size // ranks)
        hf_config = backbone.config if backbone is not None else None
        estimate = estimate_memory(cfg, batch_size=batch, num_labels=labels, hf_config=hf_config)
    except Exception as exc:  # a backbone the estimator cannot read: no check rather than a failed run
        logger.debug("training memory not estimated: %s", exc)
        return None
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
    companion = 0
    if cfg.sparse is not None:  # trained and held by rank 0 alone
        training, companion = sparse_need(cfg.sparse, dataset)
        phases["training the sparse companion"] = (training, False)
    sized = {name: size * (local_ranks if everywhere else 1) for name, (size, everywhere) in phases.items()}
    held = local_ranks * (bank + kept + WORKING_BYTES) + companion
    return TrainingMemory(held, sized, dim, not bank)


def training_need(
    cfg: RunConfig,
    dataset: XMCDataset,
    device: torch.device,
    *,
    local_ranks: int = 1,
    ranks: int = 1,
    backbone: BackboneSpec | None = None,
) -> tuple[int, str]:
    """``(bytes, what)``: the host memory a run adds to its loaded dataset on this machine, at its peak.

    Args:
        cfg: the run's configuration (backbone, batch, prototypes, mining, evaluation depth, sparse companion).
        dataset: the loaded dataset (its sizes; what it holds is counted by its loader's check).
        device: the training device: on a CPU the model's training state is host memory too.
        local_ranks: processes of the launch on this machine (each holds its bank and model).
        ranks: processes of the whole launch (each encodes ``batch_size / ranks`` queries per step).
        backbone: ``cfg.model`` resolved already (its config is not read again); None = read here.
    """
    found = training_phases(cfg, dataset, device, local_ranks=local_ranks, ranks=ranks, backbone=backbone)
    if found is None:
        return 0, ""
    phase = max(found.phases, key=found.phases.get)
    need = found.held + found.phases[phase]
    what = (
        f"training {dataset.n_train:,} queries and {dataset.n_labels:,} labels of width {found.dim}: the query bank"
        f"{' (on the GPU)' if found.bank_on_gpu else ''}"
        + (", the model's weights and AdamW state on the CPU" if device.type == "cpu" else "")
        + (", the sparse companion" if cfg.sparse is not None else "")
        + f", {phase} at its peak"
        + (f", on {local_ranks} ranks on this machine" if local_ranks > 1 else "")
    )
    return need, what


_HINT = "Use a machine with more memory, a GPU (the bank and the model then live there), or fewer ranks here."


def training_plan(
    cfg: RunConfig, dataset: XMCDataset, data_dir: str | os.PathLike, device: torch.device, backbone=None
) -> Plan | None:
    """The plan of ``vixml train`` on this machine, on top of what this process holds now (the dataset loaded,
    the libraries): the run's own memory (:func:`training_need`) and the dataset on the other local ranks of
    a torchrun launch. None when the backbone cannot be read by the estimator (then nothing is checked)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    own = distributed.rank_device(device)  # this rank's GPU: asking another one would open a context on it
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    extra, what = training_need(cfg, dataset, own, local_ranks=local, ranks=ranks, backbone=backbone)
    if not extra:
        return None
    data_need, data_what, _ = folder_need(Path(data_dir))
    needs = (
        Need("held now (the dataset loaded, the libraries)", memory_fit.resident_bytes()),
        Need("the run", extra, what),
        Need("the dataset on the other local ranks", (local - 1) * data_need, f"beside {data_what}"),
    )
    return Plan("vixml train", needs, _HINT)


def sparse_need(sc: SparseConfig, dataset: XMCDataset) -> tuple[int, int]:
    """``(training, held)``: the bytes the sparse companion's training adds at its peak beyond the trained
    companion, and the trained companion's, held for the rest of the run (module docstring)."""
    import math

    query_bytes = int(dataset.trn_texts.offsets[-1])
    label_bytes = int(dataset.lbl_texts.offsets[-1]) if sc.label_texts else 0
    query_entries = sc.ngrams * query_bytes // _SPARSE_BYTES_PER_WORD
    entries = sc.ngrams * (query_bytes + label_bytes) // _SPARSE_BYTES_PER_WORD
    depth = max(1.0, math.log2(max(dataset.n_labels, 1) / _SPARSE_LEAF_LABELS))
    forest = int(_SPARSE_FOREST_BYTES * query_entries * depth * _pruned(sc.weight_threshold)) * sc.trees
    return int(_SPARSE_TRAINING_FORESTS * forest) + _SPARSE_TEXT_BYTES * entries, forest


def _pruned(threshold: float) -> float:
    """The forest's size at ``weight_threshold`` relative to the default 0.1 (module docstring)."""
    import numpy as np

    points = np.array([0.0, 0.1, 0.3, 0.5]), np.log([2.5, 1.0, 1 / 3, 1 / 10])
    return float(np.exp(np.interp(threshold, *points)))


def _bank_fits_gpu(size: int, device: torch.device) -> bool:
    """The trainer's rule (``_query_bank``): on the GPU when it takes under a quarter of its free memory."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return size < free // 4
