"""Inference: a trained run as a :class:`Predictor`, and retrieval-augmented scoring (docs/method.md 5)."""

from __future__ import annotations

from vixml.inference.augment import augmented_scores
from vixml.inference.predictor import Predictor

__all__ = ["Predictor", "augmented_scores"]
