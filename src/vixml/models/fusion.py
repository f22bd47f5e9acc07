"""ViXML's vision enhancement (docs/method.md 3): pooled image embeddings become input tokens of the text model.

A frozen vision model turned each image into one pooled embedding offline; here one learnable linear layer
maps each of an item's (up to N) image embeddings into the backbone's token-embedding space. The backbone
places these tokens beside the word embeddings (before the text for encoders) with their mask, and mean
pooling covers them. Missing images are masked slots; image dropout masks all images of an item during
training so that a model stays good when images are missing at inference (beyond the paper).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["ImageProjection", "drop_images"]


class ImageProjection(nn.Module):
    """``Linear(vision_dim -> hidden)`` applied to every image slot (docs/method.md 3).

    Args:
        vision_dim: size of one image embedding (SigLIP2-so400m: 1152).
        hidden_size: the backbone's token-embedding width.
    """

    def __init__(self, vision_dim: int, hidden_size: int):
        super().__init__()
        self.vision_dim = vision_dim
        self.hidden_size = hidden_size
        self.linear = nn.Linear(vision_dim, hidden_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N, vision_dim) image embeddings -> (B, N, hidden) image tokens."""
        return self.linear(images.to(self.linear.weight.dtype))


def drop_images(mask: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Mask all image slots of each item with ``probability`` (image dropout).

    Args:
        mask: (B, N) bool, True where a slot holds an image.
        probability: chance that an item loses all its images.
        rng: the generator (seeded by the caller for reproducible, resumable training).

    Returns:
        A new (B, N) mask.
    """
    if probability <= 0:
        return mask
    keep = rng.random(mask.shape[0]) >= probability
    return mask & keep[:, None]
