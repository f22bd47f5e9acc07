"""PRIME label prototypes: a label's embedding enriched with a free vector and its query centroid.

docs/method.md section 4; Dahiya, Ortego and Jiménez, "Prototypical Extreme Multi-label Classification with a
Dynamic Margin Loss" (PRIME, NAACL 2025). A label's text alone is short and often ambiguous; PRIME lets the
label borrow from two more sources and mixes the three with one small transformer layer (the LPN):

* a *free vector* shared by labels of the same cluster (learnable, so it can absorb what text cannot say);
* the *centroid* of the label's training queries (what the label's queries look like in query space).

``prototype = normalise(mean(LPN([u, free_vector[cluster(label)], centroid[label]])))``.

The free-vector map (label -> cluster) is computed outside, by balanced clustering of the initial label
embeddings, and handed over with :meth:`LabelPrototypes.assign_free_vectors`. The centroids are recomputed
between epochs from the epoch's query-embedding bank with :meth:`LabelPrototypes.update_centroids`.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vixml.config.fields import FreeVectorInit, LpnInputs, UnseenLabels
from vixml.errors import ConfigError

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["LabelPrototypes"]

logger = logging.getLogger(__name__)


def _check_config(num_labels: int, dim: int, num_free_vectors: int, heads: int, ffn_dim: int, dropout: float) -> None:
    """Raise one ConfigError listing every invalid constructor argument, each with its fix."""
    problems = []
    for name, value in (("num_labels", num_labels), ("dim", dim), ("num_free_vectors", num_free_vectors)):
        if value < 1:
            problems.append(f"{name} must be >= 1, got {value}")
    if heads < 1:
        problems.append(f"heads must be >= 1, got {heads}")
    elif dim >= 1 and dim % heads != 0:
        divisors = [h for h in range(1, min(dim, 64) + 1) if dim % h == 0]
        problems.append(
            f"the embedding dimension {dim} is not divisible by heads={heads}: "
            f"set heads to a divisor of {dim} (e.g. {', '.join(map(str, divisors[-4:]))})"
        )
    if ffn_dim < 1:
        problems.append(f"ffn_dim must be >= 1, got {ffn_dim}")
    if not 0.0 <= dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {dropout}")
    if problems:
        raise ConfigError("invalid label-prototype settings:\n" + "\n".join(f"  - {p}" for p in problems))


class LabelPrototypes(nn.Module):
    """PRIME's label prototype network (docs/method.md 4, PRIME paper section 3).

    Holds the LPN (one post-norm ``TransformerEncoderLayer`` over the 3-token sequence), the learnable
    free vectors, and three buffers saved in the ``state_dict``: the label -> free-vector map, the
    per-label query centroids and the flag telling which labels have any training query.

    Args:
        num_labels: L, the number of labels.
        dim: d, the embedding dimension of the encoder (must be divisible by ``heads``).
        num_free_vectors: K, the number of free vectors (the paper uses 65,536; fewer when L is smaller).
        heads: attention heads of the LPN.
        ffn_dim: feed-forward width of the LPN.
        dropout: dropout of the LPN.
        lpn_inputs: ``"raw"``: the LPN reads the text embedding as given (callers pass the un-normalised
            pooled state) and the plain mean of the label's query embeddings, as the reference (its text
            token then dominates by norm); ``"normalized"``: both L2-normalised first (three equal-norm tokens).
        unseen_labels: labels without training queries get a prototype from a zero centroid
            (``"prototype"``, the reference) or their normalised text embedding at inference (``"text"``).

    Raises:
        ConfigError: an argument is out of range, or ``dim`` is not divisible by ``heads``.
    """

    def __init__(
        self,
        num_labels: int,
        dim: int,
        num_free_vectors: int,
        heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        lpn_inputs: LpnInputs = "raw",
        unseen_labels: UnseenLabels = "prototype",
    ) -> None:
        super().__init__()
        _check_config(num_labels, dim, num_free_vectors, heads, ffn_dim, dropout)
        if lpn_inputs not in ("raw", "normalized") or unseen_labels not in ("prototype", "text"):
            raise ConfigError(
                f"lpn_inputs must be 'raw' or 'normalized' and unseen_labels 'prototype' or 'text'; "
                f"got {lpn_inputs!r}, {unseen_labels!r}"
            )
        self.lpn_inputs = lpn_inputs
        self.unseen_labels = unseen_labels
        self.num_labels = num_labels
        self.dim = dim
        self.num_free_vectors = num_free_vectors
        self.lpn = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=ffn_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=False,
        )
        self.free_vectors = nn.Parameter(torch.empty(num_free_vectors, dim))
        nn.init.xavier_uniform_(self.free_vectors)
        # Until the trainer hands over the clustering map, labels share free vectors round-robin.
        self.register_buffer("label_to_free", torch.arange(num_labels, dtype=torch.long) % num_free_vectors)
        self.register_buffer("centroids", torch.zeros(num_labels, dim))
        self.register_buffer("has_queries", torch.zeros(num_labels, dtype=torch.bool))

    def hyperparameters(self) -> dict[str, int | float]:
        """Constructor arguments that rebuild this module (saved beside its weights)."""
        return {
            "num_labels": self.num_labels,
            "dim": self.dim,
            "num_free_vectors": self.num_free_vectors,
            "heads": self.lpn.self_attn.num_heads,
            "ffn_dim": self.lpn.linear1.out_features,
            "dropout": self.lpn.dropout.p,
            "lpn_inputs": self.lpn_inputs,
            "unseen_labels": self.unseen_labels,
        }

    @torch.no_grad()
    def assign_free_vectors(
        self,
        label_to_free: torch.Tensor | np.ndarray,
        init: FreeVectorInit = "xavier",
        label_embeddings: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Set the label -> free-vector map and (re)initialise the free vectors.

        Args:
            label_to_free: (L,) integer cluster id of each label in ``[0, num_free_vectors)``, from balanced
                clustering of the initial label embeddings.
            init: ``"xavier"`` draws every free vector afresh (Xavier uniform); ``"cluster_mean"`` sets each
                free vector to the mean of its labels' embeddings (free vectors without labels stay Xavier).
            label_embeddings: (L, d) initial label embeddings; required by ``"cluster_mean"``.

        Raises:
            ValueError: wrong shapes, ids out of range, or ``"cluster_mean"`` without ``label_embeddings``.
        """
        mapping = torch.as_tensor(label_to_free)
        if mapping.shape != (self.num_labels,) or mapping.dtype.is_floating_point or mapping.dtype == torch.bool:
            raise ValueError(
                f"label_to_free must be an integer array of shape ({self.num_labels},), "
                f"got {mapping.dtype} {tuple(mapping.shape)}"
            )
        mapping = mapping.to(torch.long)
        low, high = int(mapping.min()), int(mapping.max())
        if low < 0 or high >= self.num_free_vectors:
            raise ValueError(f"label_to_free ids must lie in [0, {self.num_free_vectors}), got {low}..{high}")
        if init not in ("xavier", "cluster_mean"):
            raise ValueError(f"init must be 'xavier' or 'cluster_mean', got {init!r}")
        self.label_to_free.copy_(mapping.to(self.label_to_free.device))
        nn.init.xavier_uniform_(self.free_vectors)
        if init == "xavier":
            return
        if label_embeddings is None:
            raise ValueError("init='cluster_mean' needs the (L, d) label_embeddings")
        emb = torch.as_tensor(label_embeddings).to(device=self.free_vectors.device, dtype=torch.float32)
        if emb.shape != (self.num_labels, self.dim):
            raise ValueError(f"label_embeddings must have shape ({self.num_labels}, {self.dim}), got {emb.shape}")
        index = self.label_to_free.to(emb.device)
        sums = torch.zeros(self.num_free_vectors, self.dim, device=emb.device).index_add_(0, index, emb)
        counts = torch.bincount(index, minlength=self.num_free_vectors)
        used = counts > 0
        means = sums[used] / counts[used].unsqueeze(1)
        self.free_vectors[used] = means.to(self.free_vectors.dtype)

    @torch.no_grad()
    def update_centroids(self, query_bank: torch.Tensor | np.ndarray, train_Y: sp.spmatrix | sp.sparray) -> None:
        """Recompute every label's centroid: the plain mean of its training queries' embeddings (xclib's
        ``compute_centroid(reduction="mean")`` in the reference; ``lpn_inputs="normalized"`` normalises it
        when it is read).

        Runs between epochs on the bank of query embeddings of the epoch just finished (on the bank's device,
        as one sparse matmul). A label with no training query gets a zero centroid and ``has_queries`` False.
        Only the sparsity pattern of ``train_Y`` counts (relevance values are ignored).

        Args:
            query_bank: (N, d) float embeddings of the N training queries, in ``train_Y`` row order.
            train_Y: (N, L) scipy sparse training label matrix.

        Raises:
            ValueError: the shapes of the bank, the label matrix and this module do not agree.
        """
        import scipy.sparse

        if not scipy.sparse.issparse(train_Y):
            raise ValueError(f"train_Y must be a scipy sparse matrix, got {type(train_Y).__name__}")
        bank = torch.as_tensor(query_bank)
        n, num_labels = train_Y.shape
        if bank.ndim != 2 or bank.shape != (n, self.dim) or num_labels != self.num_labels:
            raise ValueError(
                f"query_bank {tuple(bank.shape)} and train_Y {train_Y.shape} must be (N, {self.dim}) "
                f"and (N, {self.num_labels})"
            )
        by_label = scipy.sparse.csr_matrix(train_Y).T.tocsr()  # (L, N): a new matrix, safe to clean in place
        by_label.sum_duplicates()
        by_label.eliminate_zeros()
        counts = torch.from_numpy(np.diff(by_label.indptr).astype(np.int64))
        with warnings.catch_warnings():  # torch flags its (well-tested) CSR support as beta on every first use
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            select = torch.sparse_csr_tensor(
                torch.from_numpy(by_label.indptr.astype(np.int64)),
                torch.from_numpy(by_label.indices.astype(np.int64)),
                torch.ones(by_label.nnz, dtype=torch.float32),
                size=(num_labels, n),
                check_invariants=False,  # built from a canonical scipy CSR
            ).to(bank.device)
        sums = select @ bank.to(torch.float32)  # (L, d)
        means = sums / counts.clamp(min=1).to(sums.device, sums.dtype).unsqueeze(1)
        self.centroids.copy_(means.to(self.centroids.device, self.centroids.dtype))
        self.has_queries.copy_((counts > 0).to(self.has_queries.device))
        missing = int((counts == 0).sum())
        if missing:
            logger.info(
                "%d of %d labels have no training query: zero centroid (%s at inference)",
                missing,
                num_labels,
                "prototype" if self.unseen_labels == "prototype" else "text-embedding fallback",
            )

    def forward(self, label_ids: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Prototypes of a batch of labels.

        Args:
            label_ids: (B,) long label ids, selecting free vectors and centroids.
            text_emb: (B, d) the encoder's embeddings of the same labels' texts (u), BEFORE L2 normalisation
                (``DualEncoder.encode_labels(..., raw=True)``); ``lpn_inputs`` decides what the LPN reads.

        Returns:
            (B, d) unit-norm prototypes, in the dtype of the LPN's computation.
        """
        label_ids = label_ids.to(self.label_to_free.device, torch.long)
        free = self.label_to_free[label_ids].to(self.free_vectors.device)
        return self.compose(text_emb, free, self.centroids[label_ids])

    def compose(self, text_emb: torch.Tensor, free_ids: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        """``normalise(mean(LPN([u, free_vector, centroid])))`` from explicit parts (new labels: zero centroid)."""
        dtype = self.free_vectors.dtype
        device = self.free_vectors.device
        u = text_emb.to(device, dtype)
        c = centroids.to(device, dtype)
        if self.lpn_inputs == "normalized":
            u, c = F.normalize(u, dim=-1), F.normalize(c, dim=-1)
        tokens = torch.stack((u, self.free_vectors[free_ids.to(device)], c), dim=1)  # (B, 3, d)
        return F.normalize(self.lpn(tokens).mean(dim=1), dim=-1)

    @torch.no_grad()
    def label_embeddings(self, text_emb_all: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Inference label embeddings: every label's prototype (``unseen_labels="prototype"``, the reference:
        a label without training queries has a zero centroid), or, with ``"text"``, the normalised text
        embedding for labels without any training query. Runs in eval mode (no dropout) and restores the
        previous mode.

        Args:
            text_emb_all: (L, d) the encoder's embeddings of every label's text, before normalisation.
            batch_size: labels per LPN call (bounds the memory).

        Returns:
            (L, d) unit-norm label embeddings on ``text_emb_all``'s device, float32.
        """
        if text_emb_all.shape != (self.num_labels, self.dim):
            raise ValueError(f"text_emb_all must have shape ({self.num_labels}, {self.dim}), got {text_emb_all.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        self.eval()
        try:
            out = F.normalize(text_emb_all.to(torch.float32), dim=-1)
            if self.unseen_labels == "prototype":
                seen = torch.arange(self.num_labels, device=self.has_queries.device)
            else:
                seen = torch.nonzero(self.has_queries, as_tuple=True)[0]
            for start in range(0, seen.numel(), batch_size):
                ids = seen[start : start + batch_size]
                ids_out = ids.to(text_emb_all.device)
                protos = self(ids, text_emb_all[ids_out])
                out[ids_out] = protos.to(out.device, torch.float32)
        finally:
            self.train(was_training)
        return out
