"""Retrieval-augmented scoring ("+R"): lives in :mod:`vixml.retrieval.augment` (one retrieval path)."""

from vixml.retrieval.augment import augmented_scores

__all__ = ["augmented_scores"]
