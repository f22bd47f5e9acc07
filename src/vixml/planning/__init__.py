"""Resource planning: every memory estimate, and the one "does it fit" check of each command.

Why one package: a command holds several things at once, and each estimate was growing beside the code it
sized, re-deriving what the model builder knows. Here each phase states what it needs, with a reason
(:class:`Need`), and the commands add their phases up and refuse once (:class:`Plan`), before anything is
loaded or written. Parameter counts come from the builder's own modules built on the meta device.

- :mod:`~vixml.planning.fit`: :class:`Need` and :class:`Plan` (the sum and the one refusal);
- :mod:`~vixml.planning.backbone`: the backbone's sizes from its meta-device build (offline for known hub names);
- :mod:`~vixml.planning.gpu`: the GPU memory of a training step (``vixml memory``) and its advice;
- :mod:`~vixml.planning.training`: the host memory of a run (query bank, phases, the sparse companion);
- :mod:`~vixml.planning.search`: a top-k search and its CSR predictions;
- :mod:`~vixml.planning.predict`: ``vixml predict`` over a dataset split.

The memory a data file takes once read is the data readers' own (:mod:`vixml.data.footprint`): the dataset
loader and ``vixml data prepare`` refuse with it from below this package. What the machine has (available,
held, the refusal itself) is :mod:`vixml.memory_fit`'s.
"""

from __future__ import annotations

from vixml.planning.backbone import KNOWN_MODELS, BackboneShape, backbone_shape, offline_backbone
from vixml.planning.fit import Need, Plan
from vixml.planning.gpu import MemoryEstimate, estimate_memory, layer_activation_bytes
from vixml.planning.predict import prediction_plan
from vixml.planning.search import search_memory, to_csr_memory
from vixml.planning.training import TrainingMemory, sparse_need, training_need, training_phases, training_plan

__all__ = [
    "KNOWN_MODELS",
    "BackboneShape",
    "MemoryEstimate",
    "Need",
    "Plan",
    "TrainingMemory",
    "backbone_shape",
    "estimate_memory",
    "layer_activation_bytes",
    "offline_backbone",
    "prediction_plan",
    "search_memory",
    "sparse_need",
    "to_csr_memory",
    "training_need",
    "training_phases",
    "training_plan",
]
