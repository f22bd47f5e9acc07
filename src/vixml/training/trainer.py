"""The one training loop of vixml (docs/method.md 4): encoder or decoder, plain or PRIME, by configuration.

The trainer is given its model (``vixml.models.build_dual_encoder``) and only trains it. Per epoch: batches
from the sampler (random, or NGAME clusters of the stale query bank), queries and the batch's positive
labels encoded by the shared backbone, the loss, AdamW with warm-up/decay. Between epochs: the query bank is
re-clustered on the mining schedule, PRIME centroids are recomputed from the bank, the test split is
evaluated and a checkpoint is written. Checkpoints are also written inside an epoch (every N steps or T
minutes, and when a stop is requested by SIGINT/SIGTERM), and a run resumes from any of them bit-identically.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from vixml import distributed
from vixml.config import RunConfig
from vixml.data import XMCDataset
from vixml.data.layout import label_file
from vixml.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from vixml.models.amp import autocast, needs_grad_scaler
from vixml.models.dual_encoder import DualEncoder
from vixml.models.fusion import drop_images
from vixml.models.split_encoder import SplitEncoder
from vixml.run_folder import RunFolder
from vixml.training import checkpoint as ckpt
from vixml.training import parallel
from vixml.training.evaluation import evaluate_split
from vixml.training.hooks import EpochHook, epoch_hooks
from vixml.training.losses import Objective
from vixml.training.optim import build_optimizer, build_scheduler
from vixml.training.sampler import Batch, EpochBatchSampler
from vixml.training.state import TrainState

__all__ = ["Trainer", "EpochEnd"]

logger = logging.getLogger(__name__)


@dataclass
class EpochEnd:
    """What a callback sees after each epoch (``epoch`` = completed epochs, 1-based)."""

    epoch: int
    step: int
    losses: dict[str, float]
    metrics: dict[str, float] | None
    seconds: float


class Trainer:
    """Train a :class:`DualEncoder` on a dataset and write checkpoints into the run folder (``RunFolder``).

    Args:
        config: the run configuration.
        dataset: the loaded dataset (test split optional: then there is no periodic evaluation).
        model: the dual encoder to train, on its device (``vixml.models.build_dual_encoder``).
        out_dir: the run folder.
        images: the dataset's image banks per split (``vixml.models.image_banks``); ``{}`` = text only.
        precision: the resolved autocast precision (``fp32``, ``bf16``, ``fp16``).
        callbacks: called with an :class:`EpochEnd` after every epoch (after its checkpoint).
        step_callbacks: called with the global step after every optimiser step (tests use it to simulate kills).
        hooks: what runs around the epochs (:mod:`vixml.training.hooks`); None = the config's
            (``epoch_hooks``: NGAME re-clustering, PRIME centroids).
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: XMCDataset,
        model: DualEncoder,
        out_dir: str | Path,
        *,
        images: dict | None = None,
        precision: str = "fp32",
        callbacks: Sequence[Callable[[EpochEnd], None]] = (),
        step_callbacks: Sequence[Callable[[int], None]] = (),
        hooks: Sequence[EpochHook] | None = None,
    ):
        self.cfg = config
        self.dataset = dataset
        self.model = model
        self.out_dir = Path(out_dir)
        self.callbacks = list(callbacks)
        self.step_callbacks = list(step_callbacks)
        self.device = model.device
        self.precision = precision
        self.images = dict(images or {})
        self.world = distributed.world()  # under torchrun: each rank encodes its share of every batch
        parallel.broadcast_parameters(model)
        decoder = model.backbone.kind == "decoder"
        self.sharded = parallel.wants_fsdp(config.train.fsdp, decoder=decoder, precision=precision)
        if self.sharded:
            parallel.shard_model(model)  # before the optimiser, which must hold the shards
        self.encoder = SplitEncoder(
            model, config, precision=precision, device=self.device, dataset=dataset, images=self.images
        )
        tc = config.train
        self.sampler = EpochBatchSampler(
            dataset.trn_Y,
            tc.batch_size,
            seed=tc.seed,
            positive_sampling=tc.sampling,
            A=tc.propensity_A,
            B=tc.propensity_B,
            source=str(label_file(dataset.path, "trn") or dataset.path),
        )
        self.clip_norm = tc.clip_norm(decoder)
        self.steps_per_epoch = -(-len(self.sampler) // tc.grad_accumulation)
        rates = model.learning_rates(
            tc.lr,
            prototypes=config.prototypes.lr if config.prototypes is not None else None,
            image_projection=config.images.projection_lr if config.images is not None else None,
        )
        self.optimizer = build_optimizer(model, learning_rates=rates, weight_decay=tc.weight_decay, eps=tc.adam_eps)
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=tc.schedule,
            warmup_steps=tc.warmup_steps,
            total_steps=max(1, min(self.steps_per_epoch * tc.epochs, tc.max_steps or 1 << 62)),
        )
        self.hooks = epoch_hooks(config) if hooks is None else list(hooks)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_grad_scaler(precision))
        self.loss_generator = torch.Generator(device=self.device).manual_seed(tc.seed)
        self.objective = Objective(config.loss, config.prototypes, generator=self.loss_generator)
        self.bank = _query_bank(dataset.n_train, model.embedding_dim, self.device)
        self.state = TrainState()
        self.stop_requested: str | None = None  # set (to the signal's name) by a signal handler
        self._last_checkpoint = time.monotonic()

    # ------------------------------------------------------------------------------------------ set-up
    def _embed(
        self, split: str, *, progress: str | None = None, to_all: bool = True, raw: bool = False
    ) -> np.ndarray | None:
        """A whole split's embeddings, sharded over the ranks under torchrun (None off rank 0 unless ``to_all``)."""
        return self.encoder.embed_split_sharded(split, progress=progress, to_all=to_all, raw=raw)

    def sync_stop(self) -> None:
        """A stop asked of any rank (a signal may reach only one) is a stop of every rank."""
        if self.world.any(bool(self.stop_requested)) and not self.stop_requested:
            self.stop_requested = "stop on another rank"

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self) -> None:
        """Train from the current state to ``train.epochs`` (the history holds every epoch's record).

        Raises:
            TrainingInterrupted: a stop was requested (:attr:`stop_requested`); a checkpoint was written first.
            TrainingDiverged: the loss or the weights became non-finite; the last good checkpoint is named.
        """
        tc = self.cfg.train
        for hook in self.hooks:
            hook.on_fit_start(self)
        for epoch in range(self.state.epoch, tc.epochs):
            if self.steps_done():
                break
            losses = self._train_epoch(epoch)
            self._between_epochs(epoch)
            self.state.epoch = epoch + 1
            last = epoch + 1 == tc.epochs or self.steps_done()
            metrics = None
            every = tc.eval_interval()
            if self.dataset.tst_Y is not None and not last and every and (epoch + 1) % every == 0:
                metrics = self.evaluate()
            seconds = round(self.state.epoch_seconds, 3)
            self.state.record(
                {"epoch": epoch + 1, "step": self.state.step, **losses, **(metrics or {}), "seconds": seconds}
            )
            self.state.end_epoch()
            every = tc.checkpoint_interval()
            saved = last or (every and (epoch + 1) % every == 0)
            self.sync_stop()
            if saved or self.stop_requested:
                self.save_checkpoint()
            for callback in self.callbacks:
                callback(EpochEnd(epoch + 1, self.state.step, losses, metrics, seconds))
            if self.stop_requested and not last:
                raise TrainingInterrupted(epoch + 1, self.state.step, self.out_dir)
            if last:
                break

    def steps_done(self) -> bool:
        """``train.max_steps`` optimiser steps are done (never, without a cap)."""
        cap = self.cfg.train.max_steps
        return cap is not None and self.state.step >= cap

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        tc = self.cfg.train
        self.model.train()
        p = self.state
        sums = {k: torch.tensor(v, dtype=torch.float32, device=self.device) for k, v in p.sums.items()}
        bar = tqdm(
            total=len(self.sampler),
            initial=p.batch,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            unit="batch",
            leave=False,
            disable=not self.world.is_main,
        )
        started = time.perf_counter()
        seen = 0
        for i, batch in enumerate(self.sampler.epoch_batches(epoch, start=p.batch), start=p.batch):
            parts = self._loss(batch, np.random.default_rng([tc.seed, epoch, i]))
            self.scaler.scale(parts["loss"] / tc.grad_accumulation).backward()
            for name, value in parts.items():
                sums[name] = sums[name] + value.detach() if name in sums else value.detach().float()
            p.count += 1
            seen += len(batch)
            bar.update(1)
            if (i + 1) % tc.grad_accumulation != 0 and i + 1 != len(self.sampler):
                continue
            self._optimizer_step()
            p.batch = i + 1
            if self.steps_done():
                break
            if p.step % tc.log_every == 0:  # host synchronisation only at the log interval
                loss = float(sums["loss"]) / p.count
                self._check_finite_loss(loss)
                bar.set_postfix(loss=f"{loss:.4f}", q_per_s=f"{seen / (time.perf_counter() - started):.0f}")
            self.sync_stop()
            if p.batch < len(self.sampler) and (self.stop_requested or self._checkpoint_due()):
                p.epoch_seconds += time.perf_counter() - started
                started = time.perf_counter()
                p.sums = {k: float(v) for k, v in sums.items()}
                self.save_checkpoint()
                if self.stop_requested:
                    bar.close()
                    raise TrainingInterrupted(epoch + 1, p.step, self.out_dir)
        bar.close()
        p.epoch_seconds += time.perf_counter() - started
        losses = {f"train/{k}": float(v) / max(p.count, 1) for k, v in sums.items()}
        self._check_finite_loss(losses.get("train/loss", 0.0))
        return losses

    def _checkpoint_due(self) -> bool:
        tc = self.cfg.train
        if tc.checkpoint_steps and self.state.step % tc.checkpoint_steps == 0:
            return True
        minutes = tc.checkpoint_minutes
        due = bool(minutes) and time.monotonic() - self._last_checkpoint >= 60 * minutes
        return self.world.any(due) if minutes else due

    def _check_finite_loss(self, loss: float) -> None:
        """Stop on a non-finite loss (fp16 overflows are the gradient scaler's business, not a divergence)."""
        if math.isfinite(loss) or self.precision == "fp16":
            return
        raise TrainingDiverged(self.state.step, loss, RunFolder(self.out_dir).latest_checkpoint())

    def _batch_images(self, split: str, rows: np.ndarray, rng: np.random.Generator) -> tuple:
        """(images, mask) tensors of a batch's items, with image dropout; () when the side has no images."""
        bank = self.encoder.image_bank(split)
        if bank is None:
            return ()
        emb, mask = bank.gather(rows)
        mask = drop_images(mask, self.cfg.images.dropout, rng)
        return torch.from_numpy(emb).to(self.device), torch.from_numpy(mask).to(self.device)

    def _loss(self, batch: Batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sizes, share, keep = self.world.share(len(batch))
        q_ids, q_mask = self.encoder.tokens("trn").batch(batch.query_rows[share])
        l_ids, l_mask = self.encoder.tokens("lbl").batch(batch.label_ids[share])
        q_images = tuple(t[share] for t in self._batch_images("trn", batch.query_rows, rng))
        l_images = tuple(t[share] for t in self._batch_images("lbl", batch.label_ids, rng))
        targets = torch.from_numpy(batch.targets).to(self.device)
        with autocast(self.precision, self.device):
            q = self.model.encode_queries(q_ids.to(self.device), q_mask.to(self.device), *q_images)
            u_raw = self.model.encode_labels(l_ids.to(self.device), l_mask.to(self.device), *l_images, raw=True)
            # the global batch on every rank, gradients flowing back to each rank's share (docs/method.md 4)
            q = self.world.gather(q[:keep], sizes)
            u_raw = self.world.gather(u_raw[:keep], sizes)
            u = self.model.backbone.finish(u_raw)
            v = None
            if self.model.prototypes is not None:
                label_ids = torch.from_numpy(batch.label_ids).to(self.device)
                v = self.model.label_prototypes(label_ids, u_raw)  # the LPN reads u before normalisation
            parts = self.objective(q, u, targets, v)
        rows = torch.from_numpy(batch.query_rows).to(self.bank.device)
        self.bank[rows] = q.detach().float().to(self.bank.device, non_blocking=True)
        return parts

    def _optimizer_step(self) -> None:
        parallel.average_gradients(self.model)
        if self.clip_norm is not None:  # train.grad_clip "auto": decoders only, as the reference
            self.scaler.unscale_(self.optimizer)
            parallel.clip_grad_norm(self.model, self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        for callback in self.step_callbacks:
            callback(self.state.step)

    def _between_epochs(self, epoch: int) -> None:
        """Refresh what the next epoch uses (the epoch hooks: NGAME clusters, PRIME centroids)."""
        for hook in self.hooks:
            hook.on_epoch_end(self, epoch)

    # ------------------------------------------------------------------------------------------ evaluation
    def label_embeddings(self) -> np.ndarray:
        """(L, D) embeddings searched at inference: prototypes with PRIME, text embeddings otherwise.

        Under torchrun every rank embeds a shard; rank 0 gets them all, the others an empty (0, D) array.
        """
        text = self._embed("lbl", progress="embedding labels", to_all=False, raw=True)
        if text is None:
            return np.zeros((0, self.model.embedding_dim), dtype=np.float32)
        text = torch.from_numpy(text)
        with torch.inference_mode():
            return self.model.inference_label_embeddings(text).float().cpu().numpy()

    def evaluate_zero_shot(self) -> None:
        """Epoch 0 of the history: the untrained model on the test split, the baseline of every curve."""
        started = time.perf_counter()
        metrics = self.evaluate()
        seconds = round(time.perf_counter() - started, 3)
        self.state.record({"epoch": 0, "step": 0, **metrics, "seconds": seconds})

    def evaluate(self, label_embeddings: np.ndarray | None = None) -> dict[str, float]:
        """Metrics of the current model on the test split (``label_embeddings``: reuse them when known)."""
        return self.evaluate_with_predictions(label_embeddings)[0]

    def evaluate_with_predictions(
        self, label_embeddings: np.ndarray | None = None
    ) -> tuple[dict[str, float], sp.csr_matrix]:
        """Metrics on the test split and the (n_test, L) CSR predictions they were computed from."""
        queries = self.embed_test()
        if label_embeddings is None:
            label_embeddings = self.label_embeddings()
        if queries is None:  # not rank 0: rank 0 evaluates and says the metrics; it alone writes predictions
            return self.world.broadcast(None), sp.csr_matrix((0, self.dataset.n_labels), dtype=np.float32)
        metrics, predictions = evaluate_split(queries, label_embeddings, self.dataset, self.cfg.eval)
        logger.info("epoch %d: %s", self.state.epoch, _summary(metrics))
        return self.world.broadcast(metrics), predictions

    def embed_test(self) -> np.ndarray | None:
        """The test queries' embeddings: every rank embeds its shard, rank 0 gets them all (None elsewhere)."""
        return self._embed("tst", progress="embedding test queries", to_all=False)

    def finalize(self) -> None:
        """The hooks' last word before the final model is saved (PRIME: exact centroids from the final model)."""
        for hook in self.hooks:
            hook.on_fit_end(self)

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write a complete checkpoint of the current state (after a finiteness check of the weights).

        Every rank takes part (FSDP-sharded weights and moments are gathered); rank 0 writes.
        """
        with parallel.full_weights(self.model, trainable_only=True):
            weights = self._trainable_state()
            self._check_finite_weights(weights)
        p = self.state
        state = {
            **p.state_dict(),
            "model": weights,
            "optimizer": parallel.full_optimizer_state(self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "loss_generator": self.loss_generator.get_state(),
            "rng": ckpt.rng_state(),
            "rng_ranks": self.world.all_gather(ckpt.rng_state()),
        }
        folder = RunFolder(self.out_dir).checkpoints
        path = folder  # only rank 0 writes (atomically); the others wait until it is on disk
        if self.world.is_main:
            path = ckpt.save_checkpoint(folder, p.epoch, state, self.bank.cpu().numpy(), step=p.step)
        self.world.barrier()
        self._last_checkpoint = time.monotonic()
        return path

    def _check_finite_weights(self, weights: dict[str, torch.Tensor]) -> None:
        flags = [torch.isfinite(t).all() for t in weights.values() if t.is_floating_point()]
        if flags and not bool(torch.stack(flags).all()):
            raise TrainingDiverged(self.state.step, float("nan"), RunFolder(self.out_dir).latest_checkpoint())

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes: trainable parameters and buffers (not a LoRA run's frozen base weights)."""
        frozen = {name for name, p in self.model.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def resume(self) -> bool:
        """Load the newest checkpoint of ``out_dir`` if there is one; returns whether it did."""
        path = RunFolder(self.out_dir).latest_checkpoint()
        if path is None:
            return False
        state, bank = ckpt.load_checkpoint(path)
        missing = set(self._trainable_state()) - set(state["model"])
        if missing:
            raise ConfigError(f"checkpoint {path} lacks {sorted(missing)[:5]}...: was it written by another config?")
        parallel.load_weights(self.model, state["model"])
        parallel.load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.loss_generator.set_state(state["loss_generator"])
        ranks = state.get("rng_ranks")  # each rank continues its own random streams (dropout)
        same_world = ranks is not None and len(ranks) == self.world.size
        ckpt.set_rng_state(ranks[self.world.rank] if same_world else state["rng"])
        self.state.load_state_dict(state)
        if bank is not None:
            self.bank.copy_(torch.from_numpy(bank))
        where = f"epoch {self.state.epoch}" + (f" + {self.state.batch} batches" if self.state.batch else "")
        logger.info("resumed from %s (%s, step %d)", path, where, self.state.step)
        return True


def _query_bank(n: int, dim: int, device: torch.device) -> torch.Tensor:
    """The (N, D) float32 bank of the epoch's query embeddings: on the device when it fits comfortably.

    Kept on a GPU, filling it costs no device->host copy (no synchronisation) per step.
    """
    size = n * dim * 4
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if size < free // 4:
            return torch.zeros(n, dim, dtype=torch.float32, device=device)
        logger.info("query bank (%.1f GiB) kept in pinned host memory", size / 2**30)
        return torch.zeros(n, dim, dtype=torch.float32).pin_memory()
    return torch.zeros(n, dim, dtype=torch.float32)


def _summary(metrics: dict[str, float]) -> str:
    keys = [k for k in ("P@1", "P@5", "nDCG@5", "PSP@1", "R@100") if k in metrics]
    return ", ".join(f"{k} {100 * metrics[k]:.2f}" for k in keys)
