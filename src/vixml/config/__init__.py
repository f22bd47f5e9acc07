"""The typed, immutable configuration of a vixml run: nested dataclasses, YAML files and ``--set`` overrides.

Every option is a field of a frozen dataclass with a default and a help text (``metadata["help"]``, shown by
``vixml config show`` through :func:`describe_config`). Sections are nested by concern; an optional feature
is an optional sub-config (``images``, ``prototypes``, ``mining``, ``model.lora``, ``eval.augment``): ``None``
switches it off, a mapping (even ``{}``) switches it on with defaults for the keys it leaves out. A key
missing from a YAML file takes its default, so an empty file is a valid config.

Values are checked once, when a section is built (``__post_init__``): types (ints, floats, ``Literal``
modes, tuples, optional values, nested sections), ranges and cross-field rules. Every problem found is
gathered into one :class:`~vixml.errors.ConfigError` naming each key, the bad value and what is allowed.
Lists are stored as tuples, so a config can be shared and hashed safely; change one with
:func:`apply_overrides` or :func:`dataclasses.replace`, which validate again.

Epoch numbers in this module count from 0 (the first epoch is epoch 0).
"""

from __future__ import annotations

from vixml.config.effects import ineffective_settings
from vixml.config.fields import PROMPT_PLACEHOLDERS, InvalidConfigError, Precision
from vixml.config.files import apply_overrides, describe_config, load_config, save_config
from vixml.config.sections import (
    AugmentConfig,
    DataConfig,
    EvalConfig,
    ImagesConfig,
    LoraConfig,
    LossConfig,
    LossWeights,
    MiningConfig,
    ModelConfig,
    PrototypeConfig,
    RunConfig,
    SparseConfig,
    TrainConfig,
)

__all__ = [
    "ModelConfig",
    "LoraConfig",
    "DataConfig",
    "ImagesConfig",
    "PrototypeConfig",
    "MiningConfig",
    "LossWeights",
    "LossConfig",
    "TrainConfig",
    "AugmentConfig",
    "EvalConfig",
    "SparseConfig",
    "RunConfig",
    "Precision",
    "PROMPT_PLACEHOLDERS",
    "load_config",
    "save_config",
    "apply_overrides",
    "describe_config",
    "ineffective_settings",
    "InvalidConfigError",
]
