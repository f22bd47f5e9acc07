"""A trained run as a predictor: encode new texts, search the label embeddings, optionally "+R" (docs/method.md 5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from vixml.config import RunConfig
from vixml.data import XMCDataset, load_dataset
from vixml.devices import resolve_precision
from vixml.errors import DataError, Problem
from vixml.inference.labels import LabelSet, Predictions, read_label_ids
from vixml.inference.overlay import LabelOverlay
from vixml.retrieval import Fusion, Memory, Retriever
from vixml.run_folder import ExportFolder, RunFolder, open_run
from vixml.search import to_csr

if TYPE_CHECKING:  # torch and the models load only for a run folder, never for an export (serve-onnx)
    import torch

    from vixml.inference.onnx_encoder import OnnxQueryEncoder
    from vixml.models import DualEncoder, SplitEncoder

__all__ = ["Predictor"]

logger = logging.getLogger(__name__)


@dataclass
class Predictor:
    """Encode queries with a trained dual encoder and rank every label by inner product.

    Build it with :meth:`load` from a run folder written by :func:`vixml.training.train`, or from an export
    folder (``vixml export RUN --to onnx``), which runs its query encoder on onnxruntime without torch.

    Attributes:
        model: the dual encoder (eval mode), or an export's :class:`~vixml.inference.onnx_encoder.OnnxQueryEncoder`
            (the same questions answered: ``uses_images``, ``prototypes``, ``image_projection``).
        label_embeddings: (L, D) float32 embeddings searched (prototypes with PRIME).
        config: the run's configuration.
        device: where the model runs.
        label_texts: the trained labels' texts in id order (None for a run folder without ``label_texts.txt``).
        labels: what :meth:`predict` searches: trained labels plus the run's label overlay (added and hidden
            labels, :mod:`vixml.inference.labels`).
        run: the run folder (None for a predictor built in memory).
        sparse: the run's sparse companion (None when it has none).
        fusion: how the run fuses its sources (None without a companion).
    """

    model: DualEncoder | OnnxQueryEncoder
    label_embeddings: np.ndarray
    config: RunConfig
    device: torch.device | str
    precision: str = "fp32"
    _vision: object = field(default=None, repr=False)  # the vision model, loaded on first use of image files
    label_texts: Sequence[str] | None = None
    labels: LabelSet | None = None
    run: RunFolder | None = None
    sparse: object = None
    fusion: Fusion | None = None
    measured_recall: float | None = None  # the ANN index's recall@100 against exact, when last measured

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = LabelSet(self.label_embeddings, self.label_texts)

    @property
    def retriever(self) -> Retriever:
        """The one retrieval path over this run's sources, its labels' overlay included."""
        candidates = self.config.sparse.candidates if self.config.sparse is not None else 100
        return Retriever(self.labels, self.sparse, self.fusion, candidates=candidates)

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str = "auto", mmap: bool = False, index: str = "exact") -> Predictor:
        """Load the final model, label embeddings, label texts, label overlay and config of a run folder.

        Args:
            run_dir: the run folder, an export folder, or a Hugging Face Hub id (``org/name``) of either.
            device: where the model runs (an export runs on the CPU).
            mmap: memory-map the label embeddings read-only (server workers share one copy in the page cache).
            index: ``exact`` (blocked exact search), or ``hnsw``: an hnswlib graph over the trained labels, built
                at load (for label sets where exact search is too slow; :meth:`index_recall` measures it).
        """
        folder = open_run(run_dir)
        if isinstance(folder, ExportFolder):
            return cls._load_export(folder, mmap=mmap, index=index)
        from vixml.models import load_dual_encoder, resolve_device

        run = folder.require_finished()
        config = run.load_config()
        dev = resolve_device(device)
        model = load_dual_encoder(run.model_dir(), config, device=dev)
        label_emb = run.load_label_embeddings(mmap=mmap)
        texts = _read_label_texts(run, label_emb.shape[0])
        ids = read_label_ids(run, label_emb.shape[0])
        labels = LabelSet(label_emb, texts, LabelOverlay.read(run, label_emb), ids)
        precision = _inference_precision(config, dev)
        sparse, fusion = _read_companion(run)
        labels.use_index(_ann_index(index, label_emb))
        return cls(
            model,
            label_emb,
            config,
            dev,
            precision=precision,
            label_texts=texts,
            labels=labels,
            run=run,
            sparse=sparse,
            fusion=fusion,
        )

    @classmethod
    def _load_export(cls, folder: ExportFolder, *, mmap: bool, index: str) -> Predictor:
        """An export folder's predictor: the ONNX query encoder, the label side as a run folder keeps it."""
        from vixml.inference.onnx_encoder import OnnxQueryEncoder

        problems = folder.missing()
        if problems:
            raise DataError(problems)
        manifest = folder.read_manifest()
        if manifest.get("to") != "onnx":
            raise DataError(
                Problem(str(folder.path), f"a {manifest.get('to')} export: load it with its own library (its README)")
            )
        config = folder.load_config()
        encoder = OnnxQueryEncoder(folder, manifest, config)
        label_emb = folder.load_label_embeddings(mmap=mmap)
        if label_emb.dtype != np.float32:  # stored in fp16 (export.json says why): searched in fp32
            label_emb = np.asarray(label_emb, dtype=np.float32)
        texts = _read_label_texts(folder, label_emb.shape[0])
        labels = LabelSet(label_emb, texts, LabelOverlay.read(folder, label_emb))
        sparse, fusion = _read_companion(folder)
        labels.use_index(_ann_index(index, label_emb))
        logger.info("export %s: ONNX %s query encoder on onnxruntime", folder.path, encoder.precision)
        return cls(
            encoder,
            label_emb,
            config,
            "cpu",
            precision=encoder.precision,
            label_texts=texts,
            labels=labels,
            run=folder,
            sparse=sparse,
            fusion=fusion,
        )

    def index_recall(self, queries: np.ndarray, k: int = 100, sample: int = 1000) -> float | None:
        """Recall@k of the ANN index against exact search on (up to ``sample`` of) ``queries``; None when exact."""
        if self.labels.index is None or not len(queries):
            return None
        sample_queries = np.asarray(queries[:sample])
        recall = self.labels.index.recall(sample_queries, min(k, self.num_labels), embeddings=self.label_embeddings)
        logger.info("ANN index recall@%d against exact search on %d queries: %.4f", k, len(sample_queries), recall)
        self.measured_recall = float(recall)
        return self.measured_recall

    def encoder(self, dataset=None) -> SplitEncoder:
        """The split encoder of this model (of ``dataset``'s splits and image banks, or of free texts)."""
        if getattr(self.model, "is_export", False):
            return self.model.bind(dataset, dict(dataset.images or {}) if dataset is not None else {})
        from vixml.models import SplitEncoder, image_banks

        banks = image_banks(self.config, dataset) if dataset is not None and self.model.image_projection else {}
        return SplitEncoder(
            self.model, self.config, precision=self.precision, device=self.device, dataset=dataset, images=banks
        )

    def load_dataset(self, data_dir: str | Path) -> XMCDataset:
        """A dataset folder as this run reads it (its image banks when it fuses images), label count checked."""
        fused = self.model.image_projection is not None
        ic = self.config.images
        dataset = load_dataset(
            data_dir,
            images=fused,
            num_images=ic.num_images if fused and ic else None,
            image_model=ic.embedding_model if fused and ic else None,
        )
        if dataset.n_labels != self.num_labels:
            raise DataError(
                Problem(str(data_dir), f"has {dataset.n_labels} labels but the run was trained on {self.num_labels}")
            )
        return dataset

    @property
    def num_labels(self) -> int:
        return self.label_embeddings.shape[0]

    def encode(self, texts: Sequence[str], images=None) -> np.ndarray:
        """Query texts (and their image embeddings) -> (n, D) float32 normalised embeddings.

        Args:
            texts: n query texts.
            images: None (text only); precomputed pooled image embeddings: ``(emb (n, N, D), mask (n, N))``,
                or ``emb (n, D)`` for one image per query (rows of zeros = no image); or image files / PIL
                images: one list per query (possibly empty), embedded with the run's ``images.vision_model``.
        """
        if isinstance(images, list):
            images = self._embed_image_files(images)
        image_batch = _as_image_batch(images, len(texts))
        return self.encoder().embed_texts(list(texts), None if image_batch[0] is None else image_batch)

    def _embed_image_files(self, per_query: list) -> tuple[np.ndarray, np.ndarray]:
        """One list of image files (or PIL images) per query -> (emb (n, N, D), mask (n, N)) with the run's N."""
        from vixml.vision import embed_images, load_vision_model

        if self.config.images is None:
            raise DataError(Problem("<images>", "this run was trained without images; pass texts only"))
        if getattr(self.model, "is_export", False):
            raise DataError(
                Problem("<images>", "an export takes image embeddings, not image files (their model needs torch)")
            )
        slots = self.config.images.num_images
        chosen = [list(items)[:slots] for items in per_query]
        flat = [image for items in chosen for image in items]
        if self._vision is None:
            self._vision = load_vision_model(self.config.images.vision_model, device=str(self.device))
        emb = embed_images(self._vision, flat) if flat else np.zeros((0, self._vision.dim), np.float32)
        out = np.zeros((len(chosen), slots, emb.shape[1]), dtype=np.float32)
        mask = np.zeros((len(chosen), slots), dtype=bool)
        row = 0
        for i, items in enumerate(chosen):
            out[i, : len(items)] = emb[row : row + len(items)]
            mask[i, : len(items)] = True
            row += len(items)
        return out, mask

    def predict(self, texts: str | Sequence[str], images=None, k: int = 10, *, source: str = "auto") -> Predictions:
        """Top-``k`` labels of each text (with its images, see :meth:`encode`), with their texts.

        One string is one query (one row back); an empty text is refused, as the server refuses it.

        Searches :attr:`labels`: labels added after training included, hidden labels never returned.
        ``source``: ``auto`` (fused when the run has a sparse companion, else dense), ``dense``, ``sparse`` or
        ``fused``. Returns :class:`~vixml.inference.labels.Predictions`, which unpacks as ``scores, indices``.
        """
        if isinstance(texts, str):  # one query, not its characters: one row back
            texts = [texts]
        texts = [str(t) for t in texts]
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:  # as the server refuses it (no answer for nothing)
            raise DataError([Problem("<texts>", "empty text", field=f"item {i}") for i in empty])
        source = self.retriever.resolve(source)
        queries = None if source == "sparse" else self.encode(texts, images)
        found = self.retriever.search(queries, texts, k, source=source)
        return self.labels.predictions(found.scores, found.ids, found.found)

    def encode_labels(self, texts: Sequence[str], images=None, *, raw: bool = False) -> np.ndarray:
        """Label texts (and images, as in :meth:`encode`) -> (n, D) embeddings, as training encodes its labels.

        The label side of the dual encoder with the label token length; prototypes are applied apart
        (:func:`vixml.inference.labels.encode_new_labels`); ``raw``: before the normalisation (their input).
        """
        if images is not None and not self.model.uses_images("label"):
            if not isinstance(images, list) or any(len(items) for items in images):
                raise DataError(Problem("<images>", "this run encodes labels from their text only; pass no images"))
            images = None
        if isinstance(images, list):
            images = self._embed_image_files(images)
        image_batch = _as_image_batch(images, len(texts))
        batch = None if image_batch[0] is None else image_batch
        return self.encoder().embed_texts(list(texts), batch, side="label", raw=raw)

    def predict_dataset(
        self, data_dir: str | Path, *, split: str = "tst", k: int = 100, augment: bool = False, source: str = "auto"
    ) -> sp.csr_matrix | None:
        """Predictions for a split of a dataset folder as an (n, L) CSR (the prediction-file format).

        Under torchrun every rank embeds a shard of the split; rank 0 searches and returns the predictions,
        the other ranks return None.

        Args:
            data_dir: the dataset folder.
            split: ``"tst"`` or ``"trn"``.
            k: labels per query.
            augment: retrieval-augmented scoring with the run's ``eval.augment`` settings (paper defaults when
                the run has none): top labels and top training queries, joint softmax.
            source: ``auto``, ``dense``, ``sparse`` or ``fused`` (see :meth:`predict`).

        With ``eval.use_filter`` and a filter file for the split (``filter_labels_test.txt``), its (row, label)
        pairs are removed BEFORE the cut to ``k``, so that every row still gets ``k`` labels (+R: the fused
        scores are filtered, then ranked, as the reference does). Hidden labels are never returned; added
        labels are searched with the trained ones.
        """
        from vixml import distributed  # torch's process group: loaded with a run's model, never by an export

        source = self.retriever.resolve(source)
        self._require_fits(data_dir, split, k, augment)
        dataset = self.load_dataset(data_dir)
        encoder = self.encoder(dataset)
        queries = train_queries = None
        if source != "sparse":
            queries = encoder.embed_split_sharded(split, progress=f"embedding {split} queries", to_all=False)
            if augment:
                train_queries = encoder.embed_split_sharded("trn", progress="embedding trn queries", to_all=False)
            if queries is None:  # under torchrun, not rank 0: this rank embedded its shard; rank 0 searches
                return None
        elif not distributed.is_main():  # the sparse source alone: rank 0 predicts
            return None
        pairs = dataset.filter_tst if split == "tst" and self.config.eval.use_filter else None
        if pairs is not None and not len(pairs):
            pairs = None
        store = dataset.tst_texts if split == "tst" else dataset.trn_texts
        n = len(store)
        texts = None if source == "dense" else list(store[list(range(n))])
        memory = None
        if augment:
            from vixml.config import AugmentConfig

            ac = self.config.eval.augment or AugmentConfig()
            memory = Memory(
                train_queries,
                dataset.trn_Y.tocsr(),
                ac.num_labels,
                ac.num_queries,
                ac.temperature,
                ac.label_weight,
                exclude_self=split == "trn",  # a training query must not vote for itself
            )
        if queries is not None:
            self.index_recall(queries)
        found = self.retriever.search(queries, texts, k, source=source, exclude=pairs, memory=memory)
        return to_csr(found.scores, found.ids, self.labels.num_labels)

    def _require_fits(self, data_dir, split: str, k: int, augment: bool) -> None:
        """Refuse, before anything is embedded, a prediction whose dataset, query embeddings and search would
        not fit in this machine's memory (:func:`vixml.planning.prediction_plan`)."""
        from vixml.planning import prediction_plan

        device = "cuda" if getattr(self.device, "type", self.device) == "cuda" else "cpu"
        shape = tuple(self.label_embeddings.shape)
        plan = prediction_plan(data_dir, split, k, labels=shape, device=device, augment=augment)
        if plan is not None:
            plan.require()


INDEXES = ("exact", "hnsw")


def _ann_index(name: str, label_emb: np.ndarray):
    """None for exact search; an hnswlib graph over the label embeddings for ``hnsw`` (built now, logged)."""
    if name not in INDEXES:
        raise DataError(Problem("--index", f"unknown index {name!r}; expected one of {', '.join(INDEXES)}"))
    if name == "exact":
        return None
    import time

    from vixml.search import build_index

    started = time.perf_counter()
    index = build_index("hnswlib", np.ascontiguousarray(label_emb, dtype=np.float32), M=32, ef_search=256)
    logger.info("hnsw index over %d labels built in %.1f s", label_emb.shape[0], time.perf_counter() - started)
    return index


def _read_companion(run: RunFolder):
    """The run's sparse companion and fusion weights (None, None for a run trained without them)."""
    if not run.sparse_complete():
        return None, None
    from vixml.retrieval import SparseRanker

    fusion = Fusion.load(run.fusion) if run.fusion.is_file() else Fusion()
    return SparseRanker.load(run.sparse), fusion


def _inference_precision(config: RunConfig, device) -> str:
    """The autocast precision of prediction: the run's, with ``auto`` resolved for this machine (logged)."""
    precision, reason = resolve_precision(config.train.precision, device, purpose="prediction")
    logger.info("prediction in %s (%s)", precision, reason)
    return precision


def _read_label_texts(run: RunFolder, n_labels: int) -> Sequence[str] | None:
    """The run's label texts (lazy), or None with a note for runs written before they were kept."""
    from vixml.data import read_texts

    if not run.label_texts.is_file():
        logger.info("%s has no %s: predictions carry label ids only", run.path, run.label_texts.name)
        return None
    texts = read_texts(run.label_texts, layout="plain")
    if len(texts) != n_labels:
        raise DataError(Problem(str(run.label_texts), f"has {len(texts)} lines for {n_labels} labels"))
    return texts


def _as_image_batch(images, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Normalise the accepted image inputs to (emb (n, N, D) float32, mask (n, N) bool), or (None, None)."""
    if images is None:
        return None, None
    if isinstance(images, tuple):
        emb, mask = (np.asarray(a) for a in images)
    else:
        emb = np.asarray(images)
        if emb.ndim == 2:
            emb = emb[:, None, :]
        mask = np.abs(emb).sum(axis=-1) > 0
    if emb.ndim != 3 or emb.shape[0] != n or mask.shape != emb.shape[:2]:
        raise DataError(
            Problem(
                "<images>", f"expected (n={n}, N, D) embeddings with an (n, N) mask; got {emb.shape}, {mask.shape}"
            )
        )
    return emb.astype(np.float32, copy=False), mask.astype(bool, copy=False)
