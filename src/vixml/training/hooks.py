"""What happens around the epochs rather than in them: NGAME's re-clustering and PRIME's centroids.

A hook is registered on the :class:`~vixml.training.trainer.Trainer` (``epoch_hooks(config)`` gives a run's)
and called at three moments: before the first epoch of :meth:`Trainer.fit` (every call: a resumed run too),
at the end of every epoch once its query bank is full, and from :meth:`Trainer.finalize` after the last one.
Hooks run in their registration order, on every rank (each one decides what rank 0 alone computes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from vixml.training.clustering import balanced_kmeans

if TYPE_CHECKING:
    from vixml.config import RunConfig
    from vixml.config.sections import MiningConfig
    from vixml.training.trainer import Trainer

__all__ = ["EpochHook", "NgameClusters", "PrimeCentroids", "epoch_hooks"]

logger = logging.getLogger(__name__)


class EpochHook:
    """Does nothing at each moment; a hook overrides the moments it needs."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of a ``fit`` (``trainer.state`` says whether the run is fresh or resumed)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        """After the batches of (0-based) ``epoch``, before its evaluation and checkpoint."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, before the final model is saved (:meth:`Trainer.finalize`)."""


class NgameClusters(EpochHook):
    """NGAME: on the mining schedule, the query bank clustered into the next epochs' batches (docs/method.md 4)."""

    def __init__(self, schedule: MiningConfig, seed: int):
        self.schedule = schedule  # resolved: no "auto"
        self.seed = seed

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if not self.schedule.should_recluster(epoch):
            return
        size = self.schedule.cluster_size_at(epoch)

        def cluster() -> list[np.ndarray]:
            rows = np.flatnonzero(np.diff(trainer.dataset.trn_Y.indptr) > 0)
            bank = trainer.bank.cpu().numpy()
            clusters = balanced_kmeans(bank[rows], cluster_size=size, seed=self.seed + epoch)
            return [rows[c] for c in clusters.clusters()]

        groups = trainer.world.on_main(cluster)  # once, on rank 0; every rank then cuts the same batches from it
        trainer.sampler.set_clusters(groups, cluster_size=size)
        logger.info("epoch %d: %d query clusters of size %d", epoch + 1, len(groups), size)


class PrimeCentroids(EpochHook):
    """PRIME's prototypes: free vectors and centroids at the start, centroids refreshed from the query bank
    every ``refresh_every`` epochs, and exact ones from the final model (docs/method.md 4)."""

    def __init__(self, refresh_every: int, free_init: str, seed: int):
        self.refresh_every = refresh_every
        self.free_init = free_init
        self.seed = seed

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.state.fresh:
            self.start(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        if (epoch + 1) % self.refresh_every == 0:
            trainer.model.prototypes.update_centroids(trainer.bank, trainer.dataset.trn_Y)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.refill(trainer)  # the bank holds stale training-mode embeddings

    def start(self, trainer: Trainer) -> None:
        """Free vectors by balanced clustering of the label embeddings; centroids from the queries."""
        protos = trainer.model.prototypes
        label_emb = trainer.encoder.embed_split_sharded("lbl", progress="embedding labels")
        assignment = trainer.world.on_main(  # clustered once, on rank 0: every replica gets the same vectors
            lambda: balanced_kmeans(label_emb, num_clusters=protos.num_free_vectors, seed=self.seed).labels()
        )
        protos.assign_free_vectors(torch.from_numpy(assignment), init=self.free_init, label_embeddings=label_emb)
        self.refill(trainer)

    def refill(self, trainer: Trainer) -> None:
        """Every training query embedded by the current model (eval mode), then the centroids from them."""
        queries = trainer.encoder.embed_split_sharded("trn", progress="embedding training queries")
        trainer.bank.copy_(torch.from_numpy(queries))
        trainer.model.prototypes.update_centroids(trainer.bank, trainer.dataset.trn_Y)


def epoch_hooks(config: RunConfig) -> list[EpochHook]:
    """A run's hooks, from its ``mining`` and ``prototypes`` sections (re-clustering first, as the reference)."""
    hooks: list[EpochHook] = []
    seed = config.train.seed
    if config.mining is not None:  # "auto" = the reference schedule scaled to this run's length
        hooks.append(NgameClusters(config.mining.resolved(config.train.epochs), seed))
    pc = config.prototypes
    if pc is not None:
        hooks.append(PrimeCentroids(pc.centroid_refresh_every, pc.free_init, seed))
    return hooks
