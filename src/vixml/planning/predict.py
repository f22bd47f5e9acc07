"""Host memory of ``vixml predict`` over a dataset split, planned before anything is embedded.

Why a plan: the dataset, the query embeddings (and with +R the training queries'), the search and its
predictions are held at once, beside the model and label embeddings the predictor holds already.
"""

from __future__ import annotations

import os
from pathlib import Path

from vixml import memory_fit
from vixml.data.footprint import folder_need
from vixml.planning.fit import Need, Plan
from vixml.planning.search import search_memory, to_csr_memory

__all__ = ["prediction_plan"]

_HINT = "Predict a subset of the rows (a dataset folder with fewer test rows), or on a machine with more memory."


def prediction_plan(
    data_dir: str | os.PathLike, split: str, k: int, *, labels: tuple[int, ...], device: str, augment: bool
) -> Plan | None:
    """The plan of predicting ``split`` of ``data_dir`` against ``labels`` = (count, width) label embeddings
    on ``device`` (``cpu`` or ``cuda``); None when the folder or split cannot be read (the loader says why)."""
    if not Path(data_dir).is_dir():
        return None
    folder, what, shapes = folder_need(data_dir)
    split_shapes = {s.path.name.split("_X_Y")[0]: s for s in shapes}
    shape = split_shapes.get(split)
    if shape is None:
        return None
    n, (n_labels, dim) = shape.n_rows, labels
    width = max(k, 100)  # with filtering: k plus the most filtered pairs of a row, rarely more than a few
    searched = search_memory(n, n_labels, dim, width, device=device, precision="fp32")
    embedded = 4 * n * dim  # the query embeddings (+R: the training queries' too)
    if augment:
        n_trn = split_shapes["trn"].n_rows if "trn" in split_shapes else 0
        embedded += 4 * n_trn * dim
        searched += search_memory(n, n_trn, dim, width, device=device)
    # what the search held is not all given back before the top-k becomes a CSR (measured): added up
    needs = (
        Need("held now (the model, the label embeddings)", memory_fit.resident_bytes()),
        Need("the dataset", folder - memory_fit.BASE_BYTES, what),
        Need(
            "the query embeddings, the search and its predictions",
            embedded + searched + to_csr_memory(n, width),
            f"{n:,} query embeddings of {dim} and their top-{k} among {n_labels:,} labels",
        ),
    )
    return Plan("vixml predict", needs, _HINT)
