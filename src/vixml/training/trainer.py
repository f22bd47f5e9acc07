"""The one training loop of vixml (METHOD.md 4): encoder or decoder, plain or PRIME, by configuration.

Per epoch: batches from the sampler (random, or NGAME clusters of the stale query bank), queries and the
batch's positive labels encoded by the shared backbone, the named loss parts summed with their weights,
AdamW with warm-up/decay. Between epochs: the query bank is re-clustered on the mining schedule, PRIME
centroids are recomputed from the bank, the test split is evaluated and a complete checkpoint is written.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vixml.config import RunConfig
from vixml.data import XMCDataset
from vixml.data.tokenize import TokenArrays, TokenCache
from vixml.errors import ConfigError
from vixml.models.amp import autocast, needs_grad_scaler, resolve_device
from vixml.models.backbone import TextBackbone
from vixml.models.dual_encoder import DualEncoder
from vixml.models.encode import embed_tokens
from vixml.models.fusion import ImageProjection, drop_images
from vixml.models.lora import apply_lora
from vixml.models.prototypes import LabelPrototypes
from vixml.training import checkpoint as ckpt
from vixml.training.clustering import balanced_kmeans
from vixml.training.evaluation import evaluate_split
from vixml.training.losses import dual_encoder_loss, prime_loss
from vixml.training.optim import build_optimizer, build_scheduler
from vixml.training.sampler import Batch, EpochBatchSampler, MiningSchedule

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


@dataclass
class _Progress:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimiser steps
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Train a :class:`DualEncoder` on a dataset and write checkpoints under ``out_dir``.

    Args:
        config: the run configuration.
        dataset: the loaded dataset (test split optional: then there is no periodic evaluation).
        out_dir: the run folder (``checkpoints/`` is created inside).
        callbacks: called with an :class:`EpochEnd` after every epoch (after its checkpoint), e.g. to stop.
        step_callbacks: called with the global step after every optimiser step (tests use it to simulate kills).
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: XMCDataset,
        out_dir: Path,
        *,
        callbacks: Sequence[Callable[[EpochEnd], None]] = (),
        step_callbacks: Sequence[Callable[[int], None]] = (),
    ):
        self.cfg = config
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.callbacks = list(callbacks)
        self.step_callbacks = list(step_callbacks)
        self.device = resolve_device(config.train.device)
        _seed_everything(config.train.seed)
        self.images = self._image_banks()
        self.model = self._build_model().to(self.device)
        self.tokens = self._tokenize()
        tc = config.train
        self.sampler = EpochBatchSampler(
            dataset.trn_Y,
            tc.batch_size,
            seed=tc.seed,
            positive_sampling=tc.sampling,
            A=tc.propensity_A,
            B=tc.propensity_B,
        )
        self.schedule = None
        if config.mining is not None:
            m = config.mining
            self.schedule = MiningSchedule(m.cluster_size, m.double_at, m.start_epoch, m.update_every)
        self.steps_per_epoch = -(-len(self.sampler) // tc.grad_accumulation)
        lr_by_pattern = {}
        if config.prototypes is not None:
            lr_by_pattern[r"^prototypes\."] = config.prototypes.lr
        if config.images is not None:
            lr_by_pattern[r"^image_projection\."] = config.images.projection_lr
        self.optimizer = build_optimizer(
            self.model, lr=tc.lr, weight_decay=tc.weight_decay, eps=tc.adam_eps, lr_by_pattern=lr_by_pattern
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=tc.schedule,
            warmup_steps=tc.warmup_steps,
            total_steps=max(1, self.steps_per_epoch * tc.epochs),
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_grad_scaler(tc.precision))
        self.loss_generator = torch.Generator(device=self.device).manual_seed(tc.seed)
        self.bank = np.zeros((dataset.n_train, self.model.embedding_dim), dtype=np.float32)
        self.progress = _Progress()

    # ------------------------------------------------------------------------------------------ set-up
    def _image_banks(self) -> dict:
        """The dataset's image banks per split when the config fuses images (METHOD.md 3), else {}."""
        ic = self.cfg.images
        if ic is None:
            return {}
        banks = dict(self.dataset.images or {})
        if "trn" not in banks and "lbl" not in banks:
            raise ConfigError(
                f"images are configured but {self.dataset.path} has no image embeddings "
                "({split}_embs_imgs_<N>_<D>_<model>.npy + map): run `vixml images embed`, or set images=null"
            )
        dims = {bank.dim for bank in banks.values()}
        if len(dims) != 1 or (ic.embedding_dim is not None and dims != {ic.embedding_dim}):
            raise ConfigError(
                f"image embedding sizes {sorted(dims)} disagree (images.embedding_dim={ic.embedding_dim})"
            )
        for split in ("trn", "tst", "lbl"):
            if split not in banks:
                logger.warning("no image embeddings for split '%s': its items are encoded from text only", split)
        return banks

    def _build_model(self) -> DualEncoder:
        mc = self.cfg.model
        backbone = TextBackbone.from_pretrained(
            mc.name_or_path,
            pooling=mc.pooling,
            transform_dim=mc.transform,
            normalize=mc.normalize,
            kind=mc.kind,
            dtype=None if mc.dtype == "auto" else mc.dtype,  # names resolved by vixml.devices.torch_dtype
            device=self.device,
            attn_implementation=mc.attn_implementation,
            gradient_checkpointing=mc.gradient_checkpointing,
            liger=mc.liger,
            load_in_4bit=mc.lora is not None and mc.lora.quantize == "4bit",
        )
        ic = self.cfg.images
        placement = ic.resolve_placement(backbone.kind) if ic is not None else None
        if backbone.kind == "decoder" and placement != "before_text":
            backbone.set_prompt(mc.prompt)  # METHOD.md 2: the same prompt for queries and labels
        elif placement == "prompt":
            raise ConfigError("images.placement=prompt needs a decoder backbone; encoders take 'before_text'")
        if mc.lora is not None:
            lc = mc.lora
            apply_lora(
                backbone,
                r=lc.r,
                alpha=lc.alpha,
                rslora=lc.rslora,
                dropout=lc.dropout,
                target_modules=lc.target_modules,
            )
        prototypes = None
        pc = self.cfg.prototypes
        if pc is not None:
            num_free = min(pc.num_free_vectors, max(1, self.dataset.n_labels // 2))
            prototypes = LabelPrototypes(
                self.dataset.n_labels,
                backbone.embedding_dim,
                num_free,
                heads=pc.lpn_heads,
                ffn_dim=pc.lpn_ffn,
                dropout=pc.lpn_dropout,
            )
        projection = None
        if self.images:
            vision_dim = next(iter(self.images.values())).dim
            projection = ImageProjection(vision_dim, backbone.hidden_size)
        sides = self.cfg.images.sides if self.cfg.images is not None else "both"
        return DualEncoder(backbone, prototypes, projection, sides)

    def _tokenize(self) -> dict[str, TokenArrays]:
        cache_root = self.cfg.data.cache_dir
        cache = TokenCache(cache_root) if cache_root else TokenCache.for_dataset(self.dataset.path)
        tokenizer = self.model.backbone.tokenizer
        out = {}
        for split, texts in (("trn", self.dataset.trn_texts), ("tst", self.dataset.tst_texts)):
            if texts is not None:
                out[split] = cache.get(texts, split, texts.path, tokenizer, self.cfg.data.max_length)
        lbl = self.dataset.lbl_texts
        out["lbl"] = cache.get(lbl, "lbl", lbl.path, tokenizer, self.cfg.data.label_length())
        return out

    def _embed(self, split: str, rows: np.ndarray | None = None, caption: str | None = None) -> np.ndarray:
        encode = self.model.encode_labels if split == "lbl" else self.model.encode_queries
        side = "label" if split == "lbl" else "query"
        images = self.images.get(split) if self.model.uses_images(side) else None
        was_training = self.model.training
        self.model.eval()
        try:
            return embed_tokens(
                encode,
                self.tokens[split],
                rows=rows,
                images=images,
                batch_size=self.cfg.eval.encode_batch_size,
                precision=self.cfg.train.precision,
                device=self.device,
                progress=caption,
            )
        finally:
            self.model.train(was_training)

    def _init_prototypes(self) -> None:
        """PRIME's start: free vectors by balanced clustering of the label embeddings; centroids from queries."""
        protos = self.model.prototypes
        pc = self.cfg.prototypes
        label_emb = self._embed("lbl", caption="embedding labels")
        clusters = balanced_kmeans(label_emb, num_clusters=protos.num_free_vectors, seed=self.cfg.train.seed)
        protos.assign_free_vectors(torch.from_numpy(clusters.labels()), init=pc.free_init, label_embeddings=label_emb)
        self.bank[:] = self._embed("trn", caption="embedding training queries")
        protos.update_centroids(torch.from_numpy(self.bank), self.dataset.trn_Y)

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, float] | None:
        """Train from the current state to ``train.epochs``; returns the last evaluation's metrics."""
        tc = self.cfg.train
        if self.progress.epoch == 0 and self.model.prototypes is not None and self.progress.step == 0:
            self._init_prototypes()
        metrics = None
        for epoch in range(self.progress.epoch, tc.epochs):
            start = time.perf_counter()
            losses = self._train_epoch(epoch)
            self._between_epochs(epoch)
            self.progress.epoch = epoch + 1
            last = epoch + 1 == tc.epochs
            metrics = None
            if self.dataset.tst_Y is not None and not last and tc.eval_every and (epoch + 1) % tc.eval_every == 0:
                metrics = self.evaluate()
            record = {"epoch": epoch + 1, "step": self.progress.step, **losses, **(metrics or {})}
            record["seconds"] = round(time.perf_counter() - start, 3)
            self.progress.history.append(record)
            if last or (tc.checkpoint_every and (epoch + 1) % tc.checkpoint_every == 0):
                self.save_checkpoint()
            for callback in self.callbacks:
                callback(EpochEnd(epoch + 1, self.progress.step, losses, metrics, record["seconds"]))
        return metrics

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        tc = self.cfg.train
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        count = 0
        batches = self.sampler.epoch_batches(epoch)
        bar = tqdm(batches, total=len(self.sampler), desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", leave=False)
        seen = 0
        start = time.perf_counter()
        for i, batch in enumerate(bar):
            parts = self._loss(batch, np.random.default_rng([tc.seed, epoch, i]))
            loss = parts["loss"] / tc.grad_accumulation
            self.scaler.scale(loss).backward()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value.detach()
            count += 1
            seen += len(batch)
            if (i + 1) % tc.grad_accumulation == 0 or i + 1 == len(self.sampler):
                self._optimizer_step()
                if self.progress.step % tc.log_every == 0:  # host sync only at the log interval
                    rate = seen / (time.perf_counter() - start)
                    bar.set_postfix(loss=f"{float(sums['loss']) / count:.4f}", q_per_s=f"{rate:.0f}")
        bar.close()
        return {f"train/{k}": float(v) / max(count, 1) for k, v in sums.items()}

    def _batch_images(self, split: str, rows: np.ndarray, rng: np.random.Generator) -> tuple:
        """(images, mask) tensors of a batch's items, with image dropout; () when the side has no images."""
        side = "label" if split == "lbl" else "query"
        bank = self.images.get(split)
        if bank is None or not self.model.uses_images(side):
            return ()
        emb, mask = bank.gather(rows)
        mask = drop_images(mask, self.cfg.images.dropout, rng)
        return torch.from_numpy(emb).to(self.device), torch.from_numpy(mask).to(self.device)

    def _loss(self, batch: Batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        q_ids, q_mask = self.tokens["trn"].batch(batch.query_rows)
        l_ids, l_mask = self.tokens["lbl"].batch(batch.label_ids)
        q_images = self._batch_images("trn", batch.query_rows, rng)
        l_images = self._batch_images("lbl", batch.label_ids, rng)
        targets = torch.from_numpy(batch.targets).to(self.device)
        lc = cfg.loss
        base_kwargs: dict[str, Any] = {}
        if lc.name == "triplet":
            base_kwargs = {
                "num_negatives": lc.num_negatives,
                "margin_min": lc.margin_min,
                "margin_max": lc.margin_max,
                "dynamic_margin": lc.dynamic_margin,
                "aggressive": lc.aggressive,
                "temperature": lc.temperature,
            }
        else:
            base_kwargs = {"temperature": lc.infonce_temperature}
        w = lc.weights
        with autocast(cfg.train.precision, self.device):
            q = self.model.encode_queries(q_ids.to(self.device), q_mask.to(self.device), *q_images)
            u = self.model.encode_labels(l_ids.to(self.device), l_mask.to(self.device), *l_images)
            if self.model.prototypes is not None:
                label_ids = torch.from_numpy(batch.label_ids).to(self.device)
                v = self.model.label_prototypes(label_ids, u)
                parts = prime_loss(
                    q,
                    u,
                    v,
                    targets,
                    reg_margin=cfg.prototypes.reg_margin,
                    reg_negatives=cfg.prototypes.reg_num_negatives,
                    base=lc.name,
                    generator=self.loss_generator,
                    **base_kwargs,
                )
                total = w.u * parts["L_u"] + w.uv * parts["L_uv"] + w.i * parts["L_i"] + w.r * parts["L_r"]
            else:
                parts = dual_encoder_loss(
                    q, u, targets, symmetric=w.i > 0, base=lc.name, generator=self.loss_generator, **base_kwargs
                )
                total = w.u * parts["L_u"] + (w.i * parts["L_i"] if "L_i" in parts else 0.0)
        parts["loss"] = total
        self.bank[batch.query_rows] = q.detach().float().cpu().numpy()
        return parts

    def _optimizer_step(self) -> None:
        tc = self.cfg.train
        if tc.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.progress.step += 1
        for callback in self.step_callbacks:
            callback(self.progress.step)

    def _between_epochs(self, epoch: int) -> None:
        """Refresh what the next epoch uses: NGAME clusters of the query bank, PRIME centroids."""
        if self.schedule is not None and self.schedule.should_recluster(epoch):
            size = self.schedule.cluster_size_at(epoch)
            rows = np.flatnonzero(np.diff(self.dataset.trn_Y.indptr) > 0)
            clusters = balanced_kmeans(self.bank[rows], cluster_size=size, seed=self.cfg.train.seed + epoch)
            self.sampler.set_clusters([rows[c] for c in clusters.clusters()], cluster_size=size)
            logger.info("epoch %d: %d query clusters of size %d", epoch + 1, clusters.num_clusters, size)
        pc = self.cfg.prototypes
        if pc is not None and (epoch + 1) % pc.centroid_refresh_every == 0:
            self.model.prototypes.update_centroids(torch.from_numpy(self.bank), self.dataset.trn_Y)

    # ------------------------------------------------------------------------------------------ evaluation
    def label_embeddings(self) -> np.ndarray:
        """(L, D) embeddings searched at inference: prototypes with PRIME, text embeddings otherwise."""
        text = torch.from_numpy(self._embed("lbl", caption="embedding labels"))
        with torch.inference_mode():
            return self.model.inference_label_embeddings(text).float().cpu().numpy()

    def evaluate(self, *, label_embeddings: np.ndarray | None = None, return_predictions: bool = False):
        """Metrics of the current model on the test split (and the CSR predictions when asked).

        Args:
            label_embeddings: the (L, D) embeddings to search when the caller already has them; else computed.
            return_predictions: also return the (n_test, L) CSR predictions.
        """
        queries = self._embed("tst", caption="embedding test queries")
        if label_embeddings is None:
            label_embeddings = self.label_embeddings()
        metrics, predictions = evaluate_split(queries, label_embeddings, self.dataset, self.cfg.eval)
        logger.info("epoch %d: %s", self.progress.epoch, _summary(metrics))
        return (metrics, predictions) if return_predictions else metrics

    def finalize(self) -> None:
        """Exact PRIME centroids from the final model (the bank holds stale training-mode embeddings)."""
        if self.model.prototypes is not None:
            self.bank[:] = self._embed("trn", caption="embedding training queries")
            self.model.prototypes.update_centroids(torch.from_numpy(self.bank), self.dataset.trn_Y)

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        state = {
            "model": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "loss_generator": self.loss_generator.get_state(),
            "rng": ckpt.rng_state(),
            "epoch": self.progress.epoch,
            "step": self.progress.step,
            "history": self.progress.history,
        }
        return ckpt.save_checkpoint(self.out_dir / "checkpoints", self.progress.epoch, state, self.bank)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes: trainable parameters and buffers (not a LoRA run's frozen base weights)."""
        frozen = {name for name, p in self.model.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def resume(self) -> bool:
        """Load the newest checkpoint of ``out_dir`` if there is one; returns whether it did."""
        path = ckpt.latest_checkpoint(self.out_dir / "checkpoints")
        if path is None:
            return False
        state, bank = ckpt.load_checkpoint(path)
        missing = set(self._trainable_state()) - set(state["model"])
        if missing:
            raise ConfigError(f"checkpoint {path} lacks {sorted(missing)[:5]}...: was it written by another config?")
        self.model.load_state_dict(state["model"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.loss_generator.set_state(state["loss_generator"])
        ckpt.set_rng_state(state["rng"])
        self.progress = _Progress(state["epoch"], state["step"], list(state["history"]))
        if bank is not None:
            self.bank[:] = bank
        logger.info("resumed from %s (epoch %d, step %d)", path, self.progress.epoch, self.progress.step)
        return True


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _summary(metrics: dict[str, float]) -> str:
    keys = [k for k in ("P@1", "P@5", "nDCG@5", "PSP@1", "R@100") if k in metrics]
    return ", ".join(f"{k} {100 * metrics[k]:.2f}" for k in keys)
