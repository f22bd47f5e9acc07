"""The ViXML dual encoder: one shared backbone for queries and labels, plus PRIME prototypes (METHOD.md 1, 4).

Queries and labels are encoded by the same network; relevance is the inner product of the L2-normalised
embeddings. With prototypes, a label's inference embedding is its prototype (text embedding enriched by a
free vector and its training-query centroid); without, it is its text embedding.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from vixml.atomic import atomic_open, atomic_path
from vixml.errors import DataError, Problem
from vixml.models.backbone import TextBackbone
from vixml.models.prototypes import LabelPrototypes

if TYPE_CHECKING:
    import os

__all__ = ["DualEncoder"]

logger = logging.getLogger(__name__)

_META = "dual_encoder.json"
_PROTOTYPES = "prototypes.safetensors"


class DualEncoder(nn.Module):
    """Shared-backbone dual encoder with optional label prototypes.

    Args:
        backbone: the text backbone (pooling, optional transform and normalisation included).
        prototypes: PRIME's label prototype network, or None for a plain dual encoder.
    """

    def __init__(self, backbone: TextBackbone, prototypes: LabelPrototypes | None = None):
        super().__init__()
        self.backbone = backbone
        self.prototypes = prototypes

    @property
    def embedding_dim(self) -> int:
        return self.backbone.embedding_dim

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def encode_queries(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens of queries -> (B, D) normalised embeddings."""
        return self.backbone.encode(input_ids, attention_mask)

    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens of label texts -> (B, D) normalised text embeddings (prototypes are applied apart)."""
        return self.backbone.encode(input_ids, attention_mask)

    def label_prototypes(self, label_ids: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """(B,) label ids and their (B, D) text embeddings -> (B, D) prototypes (needs prototypes)."""
        if self.prototypes is None:
            raise RuntimeError("this dual encoder has no prototypes")
        return self.prototypes(label_ids.to(text_emb.device), text_emb)

    def inference_label_embeddings(self, text_emb_all: torch.Tensor) -> torch.Tensor:
        """(L, D) text embeddings of every label -> (L, D) embeddings to search: prototypes when present."""
        if self.prototypes is None:
            return text_emb_all
        return self.prototypes.label_embeddings(text_emb_all.to(self.device)).to(text_emb_all.device)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the backbone (Hugging Face format + head) and the prototypes (safetensors) under ``directory``.

        The metadata file is written last, so an interrupted save is recognised and refused by :meth:`load`.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / _META).unlink(missing_ok=True)
        self.backbone.save(directory / "backbone")
        meta: dict = {"format": "vixml.dual_encoder", "version": 1, "prototypes": None}
        if self.prototypes is not None:
            tensors = {k: v.detach().cpu().contiguous() for k, v in self.prototypes.state_dict().items()}
            with atomic_path(directory / _PROTOTYPES) as tmp:
                save_file(tensors, str(tmp))
            meta["prototypes"] = self.prototypes.hyperparameters()
        with atomic_open(directory / _META) as fh:
            json.dump(meta, fh, indent=2)

    @classmethod
    def load(cls, directory: str | os.PathLike, **backbone_kwargs) -> DualEncoder:
        """Restore a dual encoder written by :meth:`save` (``backbone_kwargs`` go to ``TextBackbone.load``)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.exists():
            raise DataError(Problem(str(meta_path), "missing: not a saved dual encoder, or its save was interrupted"))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        backbone = TextBackbone.load(directory / "backbone", **backbone_kwargs)
        prototypes = None
        if meta.get("prototypes"):
            prototypes = LabelPrototypes(**meta["prototypes"])
            prototypes.load_state_dict(load_file(str(directory / _PROTOTYPES)))
        return cls(backbone, prototypes).eval()
