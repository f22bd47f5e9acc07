"""The query side of an exported run: tokenizers + onnxruntime + numpy, no torch, no transformers.

:class:`OnnxQueryEncoder` stands where a :class:`~vixml.models.DualEncoder` stands in a predictor built from
an export folder (:class:`~vixml.run_folder.ExportFolder`): it answers the same few questions
(``uses_images``, ``prototypes``, ``image_projection``, ``embedding_dim``) and embeds free texts and a
dataset's splits as :class:`~vixml.models.SplitEncoder` does (the run's token length, batches of
``eval.encode_batch_size``, images as masked slots when a query has none). The label side is not
exported: adding labels to an export is refused with a message saying where to do it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vixml.errors import DataError, Problem
from vixml.optional import require

if TYPE_CHECKING:
    from vixml.config import RunConfig
    from vixml.run_folder import ExportFolder

__all__ = ["OnnxQueryEncoder", "TokenizerSettings"]

logger = logging.getLogger(__name__)

LABEL_SIDE_REFUSAL = (
    "an export holds the query encoder only: add labels in the run folder (`vixml labels add RUN ...`) and "
    "export it again"
)


@dataclass(frozen=True)
class TokenizerSettings:
    """How the run's Hugging Face tokenizer was called, for the ``tokenizers`` library to do the same."""

    max_length: int
    pad_id: int
    pad_token: str
    padding_side: str = "right"
    truncation_side: str = "right"

    @classmethod
    def of(cls, tokenizer, max_length: int) -> TokenizerSettings:
        """The settings of a (prepared) Hugging Face fast tokenizer called with ``max_length``."""
        return cls(
            int(max_length),
            int(tokenizer.pad_token_id),
            str(tokenizer.pad_token),
            str(tokenizer.padding_side),
            str(getattr(tokenizer, "truncation_side", "right")),
        )

    def load(self, path):
        """The ``tokenizers.Tokenizer`` of ``path`` (a ``tokenizer.json``) with these settings."""
        tokenizers = require("tokenizers", "serve-onnx")
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library's own error: a damaged file
            raise DataError(Problem(str(path), f"unreadable tokenizer ({exc}); export the run again")) from None
        tokenizer.enable_truncation(self.max_length, direction=self.truncation_side)
        tokenizer.enable_padding(direction=self.padding_side, pad_id=self.pad_id, pad_token=self.pad_token)
        return tokenizer


@dataclass(frozen=True)
class _ImageInputs:
    """What a predictor reads of an image projection: the width of one image embedding."""

    vision_dim: int


class OnnxQueryEncoder:
    """An export's ONNX query encoder behind the interface the predictor uses (see the module doc).

    Args:
        folder: the export folder.
        manifest: its ``export.json`` (read by :meth:`ExportFolder.read_manifest`).
        config: the run's configuration (token length, batch size, images).
        threads: onnxruntime's intra-op threads (0 = its default: one per core).
    """

    is_export = True
    prototypes = None  # PRIME acts on the label side only: its prototypes are in the exported label embeddings

    def __init__(self, folder: ExportFolder, manifest: dict, config: RunConfig, *, threads: int = 0):
        ort = require("onnxruntime", "serve-onnx")
        self.folder = folder
        self.config = config
        self.precision = str(manifest.get("precision", "fp32"))
        self.embedding_dim = int(manifest["embedding_dim"])
        self.num_images = int(manifest.get("num_images") or 0)
        vision_dim = manifest.get("vision_dim")
        self.image_projection = _ImageInputs(int(vision_dim)) if vision_dim else None
        self._query_images = bool(manifest.get("query_images"))
        self.settings = TokenizerSettings(**manifest["tokenizer"])
        self.tokenizer = self.settings.load(folder.tokenizer_file)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(folder.query_encoder), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types: a damaged or truncated graph
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                Problem(str(folder.query_encoder), f"unreadable ONNX graph ({first}); export again")
            ) from None
        self._inputs = {i.name for i in self.session.get_inputs()}

    def uses_images(self, side: str) -> bool:
        return side == "query" and self._query_images

    @property
    def batch_size(self) -> int:
        return self.config.eval.encode_batch_size

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> (input_ids (B, T), attention_mask (B, T)) int64, as the run's tokenizer gives them."""
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def embed_texts(
        self,
        texts: Sequence[str],
        images: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        side: str = "query",
        raw: bool = False,
    ) -> np.ndarray:
        """Free query texts (and their image embeddings) -> (n, D) float32 normalised embeddings."""
        if side != "query" or raw:
            raise DataError(Problem(str(self.folder.path), LABEL_SIDE_REFUSAL))
        if self._query_images and images is None:  # as training encodes an item without images: masked slots
            shape = (len(texts), self.num_images)
            images = np.zeros((*shape, self.image_projection.vision_dim), np.float32), np.zeros(shape, bool)
        out = []
        for start in range(0, len(texts), self.batch_size):
            stop = start + self.batch_size
            ids, mask = self.tokenize(texts[start:stop])
            feed = {"input_ids": ids, "attention_mask": mask}
            if self._query_images:
                feed["images"] = np.ascontiguousarray(images[0][start:stop], dtype=np.float32)
                feed["image_mask"] = np.ascontiguousarray(images[1][start:stop], dtype=bool)
            out.append(self.session.run(["query_embedding"], {k: v for k, v in feed.items() if k in self._inputs})[0])
        return (
            np.concatenate(out).astype(np.float32, copy=False)
            if out
            else np.zeros((0, self.embedding_dim), np.float32)
        )

    def bind(self, dataset=None, images: dict | None = None) -> _DatasetEncoder:
        """The encoder of ``dataset``'s splits (what :meth:`Predictor.encoder` returns for an export)."""
        return _DatasetEncoder(self, dataset, images or {})


class _DatasetEncoder:
    """An export's encoder of a dataset's query splits (the interface of ``SplitEncoder`` that prediction uses)."""

    def __init__(self, encoder: OnnxQueryEncoder, dataset, images: dict):
        self.encoder = encoder
        self.dataset = dataset
        self.images = images

    def embed_texts(self, texts, images=None, *, side: str = "query", raw: bool = False) -> np.ndarray:
        return self.encoder.embed_texts(texts, images, side=side, raw=raw)

    def embed_split(self, split: str, *, progress: str | None = None, raw: bool = False, **_) -> np.ndarray:
        if split == "lbl" or self.dataset is None:
            raise DataError(Problem(str(self.encoder.folder.path), LABEL_SIDE_REFUSAL))
        store = self.dataset.trn_texts if split == "trn" else self.dataset.tst_texts
        texts = list(store[list(range(len(store)))])
        bank = self.images.get(split) if self.encoder.uses_images("query") else None
        images = bank.gather(np.arange(len(texts))) if bank is not None else None
        logger.info("%s: %d texts through the ONNX query encoder", progress or f"embedding {split}", len(texts))
        return self.encoder.embed_texts(texts, images)

    def embed_split_sharded(self, split: str, *, progress: str | None = None, to_all: bool = True, raw: bool = False):
        return self.embed_split(split, progress=progress, raw=raw)
