"""The ViXML dual encoder: one shared backbone for queries and labels, image fusion, PRIME prototypes.

Queries and labels are encoded by the same network; relevance is the inner product of the L2-normalised
embeddings (docs/method.md 1). With an image projection, an item's pooled image embeddings enter as extra input
tokens (docs/method.md 3) on the sides that carry images. With prototypes, a label's inference embedding is its
prototype (text embedding enriched by a free vector and its training-query centroid, docs/method.md 4);
without, it is its text embedding.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from vixml.atomic import atomic_open, atomic_path
from vixml.config.fields import ImageSides
from vixml.errors import DataError, Problem
from vixml.models.backbone import TextBackbone
from vixml.models.fusion import ImageProjection
from vixml.models.prototypes import LabelPrototypes
from vixml.run_folder import MODEL_COMPLETE

if TYPE_CHECKING:
    import os

__all__ = ["DualEncoder"]

logger = logging.getLogger(__name__)

_META = MODEL_COMPLETE  # written last: the run folder reads its presence as a complete model
_PROTOTYPES = "prototypes.safetensors"
_PROJECTION = "image_projection.safetensors"


class DualEncoder(nn.Module):
    """Shared-backbone dual encoder with optional label prototypes.

    Args:
        backbone: the text backbone (pooling, optional transform and normalisation included).
        prototypes: PRIME's label prototype network, or None for a plain dual encoder.
        image_projection: maps image embeddings to image tokens, or None for a text-only model.
        image_sides: which items carry images when there is a projection: queries, labels or both.
    """

    def __init__(
        self,
        backbone: TextBackbone,
        prototypes: LabelPrototypes | None = None,
        image_projection: ImageProjection | None = None,
        image_sides: ImageSides = "both",
    ):
        super().__init__()
        self.backbone = backbone
        self.prototypes = prototypes
        self.image_projection = image_projection
        self.image_sides = image_sides

    def uses_images(self, side: Literal["query", "label"]) -> bool:
        """Whether items of ``side`` are encoded with their images."""
        return self.image_projection is not None and self.image_sides in ("both", side)

    def learning_rates(
        self, lr: float, *, prototypes: float | None = None, image_projection: float | None = None
    ) -> dict[str, float]:
        """The learning rate of each trainable parameter, by name: the backbone at ``lr``, PRIME's prototype
        network and free vectors at ``prototypes``, the image projection at ``image_projection`` (each at ``lr``
        when None). The reference trains those heads faster (5e-4, docs/method.md 4)."""
        own = {"prototypes": prototypes, "image_projection": image_projection}
        rates = {}
        for name, param in self.named_parameters():
            if param.requires_grad:
                part = own.get(name.split(".", 1)[0])
                rates[name] = lr if part is None else part
        return rates

    @property
    def embedding_dim(self) -> int:
        return self.backbone.embedding_dim

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def encode_queries(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        images: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Queries -> (B, D) normalised embeddings.

        Args:
            input_ids: (B, T) token ids; attention_mask: (B, T).
            images: (B, N, vision_dim) image embeddings, or None (text only, or images absent).
            image_mask: (B, N), False for missing images.
        """
        return self._encode("query", input_ids, attention_mask, images, image_mask)

    def encode_labels(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        images: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        *,
        raw: bool = False,
    ) -> torch.Tensor:
        """Label texts (and images) -> (B, D) normalised embeddings (prototypes are applied apart).

        ``raw``: before the normalisation (the reference's LPN reads the raw pooled state ``u``; normalise it
        with ``backbone.finish`` for the losses).
        """
        return self._encode("label", input_ids, attention_mask, images, image_mask, raw=raw)

    def _encode(self, side, input_ids, attention_mask, images, image_mask, raw: bool = False) -> torch.Tensor:
        # a module call (not .encode): FSDP2's hooks on a sharded backbone gather its weights
        if images is None or not self.uses_images(side):
            return self.backbone(input_ids, attention_mask, raw=raw)
        tokens = self.image_projection(images.to(self.device))
        mask = image_mask.to(self.device) if image_mask is not None else None
        return self.backbone(input_ids, attention_mask, extra_embeds=tokens, extra_mask=mask, raw=raw)

    def label_prototypes(self, label_ids: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """(B,) label ids and their (B, D) raw text embeddings -> (B, D) prototypes (needs prototypes)."""
        if self.prototypes is None:
            raise RuntimeError("this dual encoder has no prototypes")
        return self.prototypes(label_ids.to(text_emb.device), text_emb)

    def inference_label_embeddings(self, text_emb_all: torch.Tensor) -> torch.Tensor:
        """(L, D) raw text embeddings of every label (``encode_labels(..., raw=True)``) -> (L, D) embeddings
        to search: prototypes when present, else the normalised text embeddings."""
        if self.prototypes is None:
            return self.backbone.finish(text_emb_all)
        return self.prototypes.label_embeddings(text_emb_all.to(self.device)).to(text_emb_all.device)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the backbone (Hugging Face format + head), the prototypes and the image projection (safetensors).

        The metadata file is written last, so an interrupted save is recognised and refused by :meth:`load`.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / _META).unlink(missing_ok=True)
        self.backbone.save(directory / "backbone")
        meta: dict = {"format": "vixml.dual_encoder", "version": 1, "prototypes": None, "image_projection": None}
        if self.prototypes is not None:
            _save_module(self.prototypes, directory / _PROTOTYPES)
            meta["prototypes"] = self.prototypes.hyperparameters()
        if self.image_projection is not None:
            _save_module(self.image_projection, directory / _PROJECTION)
            p = self.image_projection
            meta["image_projection"] = {"vision_dim": p.vision_dim, "hidden_size": p.hidden_size}
            meta["image_sides"] = self.image_sides
        with atomic_open(directory / _META) as fh:
            json.dump(meta, fh, indent=2)

    @classmethod
    def load(cls, directory: str | os.PathLike, **backbone_kwargs) -> DualEncoder:
        """Restore a dual encoder written by :meth:`save` (``backbone_kwargs`` go to ``TextBackbone.load``)."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.exists():
            raise DataError(Problem(str(meta_path), "missing: not a saved dual encoder, or its save was interrupted"))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        backbone = TextBackbone.load(directory / "backbone", **backbone_kwargs)
        prototypes = projection = None
        if meta.get("prototypes"):
            hyper = meta["prototypes"]
            missing = [key for key in ("lpn_inputs", "unseen_labels") if key not in hyper]
            if missing:  # their defaults differ from what such a model was trained with: never guessed
                raise DataError(
                    Problem(str(meta_path), f"prototypes lack {missing}: written by a pre-release vixml; train again")
                )
            prototypes = _load_module(LabelPrototypes(**hyper), directory / _PROTOTYPES)
        if meta.get("image_projection"):
            projection = _load_module(ImageProjection(**meta["image_projection"]), directory / _PROJECTION)
        return cls(backbone, prototypes, projection, meta.get("image_sides", "both")).eval()


def _save_module(module: nn.Module, path: Path) -> None:
    """A module's state (parameters and buffers) as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def _load_module(module: nn.Module, path: Path) -> nn.Module:
    """``module`` with the state written by :func:`_save_module`."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))
    return module
