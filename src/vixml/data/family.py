"""The family of a dataset (Amazon, Wikipedia, other), which fixes the propensity model of its PSP metrics.

Jain et al. (KDD 2016) fitted the inverse-propensity parameters per dataset family, and the published
PSP@k numbers use them: A=0.6/B=2.6 for the Amazon datasets, 0.5/0.4 for Wikipedia, 0.55/1.5 otherwise
(:data:`vixml.metrics.PROPENSITY_PRESETS`). XMC benchmark names carry the family
(``LF-AmazonTitles-131K``, ``LF-WikiSeeAlso-320K``), so ``prepare`` records the family of the source
folder's name in ``dataset.json`` (or the one given with ``--family``), and ``vixml evaluate`` takes A/B
from it when they are not given.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Family", "FAMILIES", "dataset_family"]

Family = Literal["amazon", "wikipedia", "other"]
FAMILIES: tuple[str, ...] = get_args(Family)


def dataset_family(name: str) -> Family | None:
    """``amazon`` when ``name`` contains "amazon", ``wikipedia`` when it contains "wiki" (any case), else None.

    Args:
        name: a dataset name or folder name (``LF-AmazonTitles-131K``, ``data/LF-WikiSeeAlso-320K``), or a
            family name itself.
    """
    lowered = str(name).lower()
    if lowered in FAMILIES:
        return lowered  # type: ignore[return-value]
    if "amazon" in lowered:
        return "amazon"
    if "wiki" in lowered:
        return "wikipedia"
    return None
