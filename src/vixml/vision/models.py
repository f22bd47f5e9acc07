"""Frozen vision models that turn an image into ONE pooled embedding, chosen by ``config.model_type``.

ViXML (docs/method.md section 3) encodes every image once, offline, with a frozen vision foundation model
(paper: ``google/siglip2-so400m-patch14-384``, 1152-d). Which output is "the" image embedding depends on
the architecture, so a small registry keyed by ``config.model_type`` (never by name substrings) says
which class to load and which output to keep:

- SigLIP / SigLIP2 (``siglip``, ``siglip_vision_model``, ``siglip2``, ``siglip2_vision_model``): only the
  vision tower is loaded (from a full checkpoint too) and its ``pooler_output`` is kept: the
  attention-pooled (MAP head) feature, the same tensor as ``SiglipModel.get_image_features``. The
  fixed-resolution SigLIP2 checkpoints, the paper's included, have model type ``siglip``; ``siglip2`` is
  the NaFlex variant, whose processor adds ``pixel_attention_mask`` and ``spatial_shapes``.
- CLIP (``clip``, and ``clip_vision_model`` saved as ``CLIPVisionModelWithProjection``): the projected
  image embedding ``image_embeds`` (= ``CLIPModel.get_image_features``). A ``clip_vision_model`` saved
  without projection has none to apply: its ``pooler_output`` (CLS after the last layer norm) is kept.
- Anything else: ``AutoModel``, then ``get_image_features`` when the model has it, else ``pooler_output``,
  else the mean of ``last_hidden_state`` over tokens / positions; the choice is logged.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vixml import devices
from vixml.devices import Precision
from vixml.errors import ConfigError
from vixml.optional import require

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_VISION_MODEL",
    "ImagePreprocessor",
    "Precision",
    "VisionEncoder",
    "VisionFamily",
    "VISION_FAMILIES",
    "load_vision_model",
    "resolve_precision",
]

logger = logging.getLogger(__name__)

DEFAULT_VISION_MODEL = "google/siglip2-so400m-patch14-384"


@dataclass(frozen=True)
class VisionFamily:
    """How to load one model type and which forward output is its image embedding.

    Attributes:
        model_class: the ``transformers`` class to load (a vision tower loads from a full checkpoint too).
        output: the forward-output attribute holding the (batch, D) feature.
        feature: what that feature is, in words (logged and reported).
        by_architecture: overrides ``(model_class, output, feature)`` for checkpoints whose saved
            ``config.architectures`` names the key (a CLIP vision tower saved with or without projection).
    """

    model_class: str
    output: str
    feature: str
    by_architecture: dict[str, tuple[str, str, str]] = field(default_factory=dict)


_SIGLIP = "attention-pooled image feature (SigLIP MAP head, = get_image_features)"
_CLIP = "projected image embedding (CLIP visual_projection, = get_image_features)"
VISION_FAMILIES: dict[str, VisionFamily] = {
    "siglip": VisionFamily("SiglipVisionModel", "pooler_output", _SIGLIP),
    "siglip_vision_model": VisionFamily("SiglipVisionModel", "pooler_output", _SIGLIP),
    "siglip2": VisionFamily("Siglip2VisionModel", "pooler_output", _SIGLIP),
    "siglip2_vision_model": VisionFamily("Siglip2VisionModel", "pooler_output", _SIGLIP),
    "clip": VisionFamily("CLIPVisionModelWithProjection", "image_embeds", _CLIP),
    "clip_vision_model": VisionFamily(
        "CLIPVisionModel",
        "pooler_output",
        "CLS token after the last layer norm (unprojected: the checkpoint has no projection)",
        by_architecture={"CLIPVisionModelWithProjection": ("CLIPVisionModelWithProjection", "image_embeds", _CLIP)},
    ),
}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The weights' precision for image embedding, by the rule of :func:`vixml.devices.resolve_precision`.

    ``auto`` -> bf16 where the device runs it natively (CUDA with bf16, CPUs with AVX512_BF16/AMX), else
    fp16 on CUDA and fp32 on CPU; an explicit bf16 where it is emulated logs a warning with its cost.

    Raises:
        ConfigError: an unknown name.
    """
    chosen, reason = devices.resolve_precision(precision, device, purpose="image embedding", setting="--precision")
    logger.info("image embedding precision %s", reason)
    return chosen


@dataclass(frozen=True, eq=False)
class ImagePreprocessor:
    """Picklable CPU half of a :class:`VisionEncoder` (data-loader workers get this, never the model).

    Attributes:
        processor: the model's ``AutoImageProcessor``.
        keys: the processor outputs the model's forward accepts (others are dropped).
    """

    processor: Any
    keys: frozenset[str]

    def __call__(self, images: list) -> dict[str, torch.Tensor]:
        """Resize and normalise RGB PIL images (CPU tensors, batch first, e.g. ``pixel_values`` (n, C, H, W))."""
        batch = self.processor(images=images, return_tensors="pt")
        return {k: v for k, v in batch.items() if k in self.keys}


@dataclass(eq=False)
class VisionEncoder:
    """A loaded, frozen vision model with its image processor; images -> (n, D) float32 features.

    ``preprocess`` runs on CPU and may run in data-loader workers; ``encode`` runs the model. Use
    :func:`load_vision_model` to build one.

    Attributes:
        model: the ``transformers`` module, in eval mode, on ``device`` in ``dtype``.
        preprocess: its image processor, restricted to the inputs the model takes (picklable).
        name_or_path: what it was loaded from.
        model_type: ``config.model_type``.
        output: the forward output kept (``pooler_output``, ``image_embeds``, ``get_image_features`` or
            ``mean_last_hidden_state``).
        feature: that output in words.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        dim: D, found by encoding one blank image at load time.
    """

    model: Any
    preprocess: ImagePreprocessor
    name_or_path: str
    model_type: str
    output: str
    feature: str
    precision: str
    dim: int = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_model(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a preprocessed batch to the model's device, floating tensors in the model's dtype."""
        device, dtype = self.device, next(self.model.parameters()).dtype
        return {
            k: v.to(device, dtype=dtype if v.is_floating_point() else v.dtype, non_blocking=True)
            for k, v in inputs.items()
        }

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Model features of a preprocessed batch.

        Args:
            inputs: :meth:`preprocess` output; ``pixel_values`` (n, C, H, W) or (n, patches, C*p*p).

        Returns:
            float32 (n, D) on CPU.
        """
        import torch

        moved = self.to_model(inputs)
        with torch.inference_mode():
            if self.output == "get_image_features":
                out = self.model.get_image_features(**moved)
                feats = out if isinstance(out, torch.Tensor) else out.pooler_output
            elif self.output == "mean_last_hidden_state":
                hidden = self.model(**moved).last_hidden_state
                feats = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
            else:
                feats = getattr(self.model(**moved), self.output)
        return feats.float().cpu()

    def __call__(self, images: list) -> torch.Tensor:
        """Features of RGB PIL images, float32 (n, D) on CPU."""
        return self.encode(self.preprocess(images))


def check_model_source(name_or_path: str) -> None:
    """Refuse at once a model given as a local path that is not a folder (before anything loads or is written).

    A name that can only be a path (absolute, ``./``, ``../``, ``~``, a backslash, or more than one ``/``;
    a hub name is ``name`` or ``org/name``) must be an existing folder.

    Raises:
        ConfigError: the path does not exist or is a file.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    path_like = text.startswith(("/", "./", "../", "~", ".\\")) or "\\" in text or text.count("/") > 1
    if path.is_file():
        raise ConfigError(f"--model {text!r} is a file: give the folder holding the model's config and weights")
    if path_like and not path.is_dir():
        raise ConfigError(
            f"--model {text!r}: no such folder. Give a local folder holding the model's config, weights and image "
            "processor, or a Hugging Face hub name such as google/siglip2-so400m-patch14-384"
        )


def load_vision_model(
    name_or_path: str = DEFAULT_VISION_MODEL, device: str = "auto", precision: str = "auto"
) -> VisionEncoder:
    """Load a vision model and its image processor, frozen, for feature extraction.

    Args:
        name_or_path: a Hugging Face hub name or a local folder (config, weights, image processor).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        precision: ``auto`` (bf16 where native, else fp16 on CUDA and fp32 on CPU: see
            :func:`resolve_precision`), ``fp32``, ``fp16`` or ``bf16``: the dtype the weights are cast to;
            features are returned as float32 either way.

    Raises:
        ConfigError: the model or its processor cannot be loaded, weights of the vision tower are missing
            from the checkpoint, or no pooled output can be found.
    """
    import transformers

    Image = require("PIL.Image", "vision")
    torch_device = devices.resolve_device(device, setting="--device")
    precision = resolve_precision(precision, torch_device)
    check_model_source(name_or_path)
    source = str(Path(name_or_path).expanduser()) if Path(name_or_path).expanduser().is_dir() else name_or_path
    try:
        with _quiet_transformers():  # e.g. "no torchvision, using the PIL image processor": not actionable here
            config = transformers.AutoConfig.from_pretrained(source)
            processor = transformers.AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the vision model {name_or_path!r}: {exc}. Give a local folder holding its config, "
            "weights and image processor, or a hub name that is reachable (or cached)"
        ) from exc
    model_type = config.model_type
    family = VISION_FAMILIES.get(model_type)
    if family is not None:
        class_name, output, feature = family.model_class, family.output, family.feature
        for arch in config.architectures or ():
            if arch in family.by_architecture:
                class_name, output, feature = family.by_architecture[arch]
        model_class = getattr(transformers, class_name)
    else:
        model_class, output, feature = transformers.AutoModel, "", ""
    with _quiet_transformers():  # a tower loaded from a full checkpoint lists every text weight as unexpected
        model, info = model_class.from_pretrained(source, output_loading_info=True)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ConfigError(
            f"{name_or_path!r} lacks weights of {type(model).__name__}: {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; they would be random. Is it a {model_type} vision checkpoint?"
        )
    dtype = devices.torch_dtype(precision)
    model = model.to(torch_device, dtype=dtype).eval().requires_grad_(False)
    if family is None and callable(getattr(model, "get_image_features", None)):
        output = "get_image_features"
    accepted = inspect.signature(model.get_image_features if output == "get_image_features" else model.forward)
    encoder = VisionEncoder(
        model=model,
        preprocess=ImagePreprocessor(
            processor, frozenset(p for p in accepted.parameters if p not in ("kwargs", "args"))
        ),
        name_or_path=name_or_path,
        model_type=model_type,
        output=output,
        feature=feature,
        precision=precision,
    )
    blank = [Image.new("RGB", (32, 32), (255, 255, 255))]
    if family is None:
        encoder.output, encoder.feature = _generic_output(encoder, blank)
        logger.info(
            "model type %r is not in the vision registry (known: %s); using its generic %s",
            model_type,
            ", ".join(sorted(VISION_FAMILIES)),
            encoder.feature,
        )
    probe = encoder(blank)
    if probe.ndim != 2:
        raise ConfigError(f"{name_or_path!r}: {output} has shape {tuple(probe.shape)}, expected (batch, D)")
    encoder.dim = int(probe.shape[1])
    logger.info(
        "vision model %s (%s) on %s in %s: %s, D=%d",
        name_or_path,
        model_type,
        torch_device,
        precision,
        encoder.feature,
        encoder.dim,
    )
    return encoder


@contextlib.contextmanager
def _quiet_transformers():
    """Only errors from transformers' loggers, and no progress bars, inside the block (we check missing weights)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _generic_output(encoder: VisionEncoder, images: list) -> tuple[str, str]:
    """The output to keep for a model type outside the registry, and its description, from one forward pass."""
    import torch

    if encoder.output == "get_image_features":
        return encoder.output, "the model's get_image_features"
    if "pixel_values" not in encoder.preprocess.keys:
        raise ConfigError(f"{type(encoder.model).__name__} takes no pixel_values: it is not a vision model")
    with torch.inference_mode():
        out = encoder.model(**encoder.to_model(encoder.preprocess(images)))
    if getattr(out, "pooler_output", None) is not None:
        return "pooler_output", "pooler_output (the backbone's own pooled feature)"
    if getattr(out, "last_hidden_state", None) is not None:
        return "mean_last_hidden_state", "mean of last_hidden_state over tokens/positions (no pooled output)"
    raise ConfigError(f"{type(encoder.model).__name__} returns neither pooler_output nor last_hidden_state")
