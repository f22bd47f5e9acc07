"""Tiny random-weight vision models and tiny image banks for offline tests and benchmarks.

Models are built from configs (no download) and saved with a matching image processor, so
``load_vision_model(folder)`` goes through the same ``from_pretrained`` path as a hub model.
Banks are ``{train,test,labels}_imgs_<size>_<N>.bin`` files of base64 JPEGs (one per line) with
pickle-free maps: item i has ``i % (N + 1)`` images, so some items have none.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

__all__ = [
    "coloured_images",
    "decode_bank",
    "encode_jpeg",
    "tiny_clip",
    "tiny_image_dataset",
    "tiny_siglip",
    "tiny_siglip2",
    "tiny_vit",
    "write_bank",
]

_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def tiny_siglip(folder: Path, *, full: bool = False, image_size: int = 32, patch_size: int = 8) -> Path:
    """A random SigLIP vision tower (``siglip_vision_model``), or a full ``SiglipModel`` (``siglip``)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    vision = tf.SiglipVisionConfig(**_TOWER, image_size=image_size, patch_size=patch_size)
    if full:
        text = dict(_TOWER, num_hidden_layers=1, vocab_size=64, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model = tf.SiglipModel(tf.SiglipConfig(vision_config=vision.to_dict(), text_config=text))
    else:
        model = tf.SiglipVisionModel(vision)
    model.save_pretrained(folder)
    tf.SiglipImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return Path(folder)


def tiny_siglip2(folder: Path, *, patch_size: int = 8, max_patches: int = 16) -> Path:
    """A random NaFlex SigLIP2 vision tower (``siglip2_vision_model``): patches + attention mask + shapes."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.Siglip2VisionModel(
        tf.Siglip2VisionConfig(**_TOWER, patch_size=patch_size, num_patches=max_patches)
    ).save_pretrained(folder)
    tf.Siglip2ImageProcessorPil(patch_size=patch_size, max_num_patches=max_patches).save_pretrained(folder)
    return Path(folder)


def tiny_clip(folder: Path, *, projection: bool = True, full: bool = False, image_size: int = 32) -> Path:
    """A random CLIP vision tower with projection (default), without, or a full ``CLIPModel``."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    vision = tf.CLIPVisionConfig(**_TOWER, image_size=image_size, patch_size=8, projection_dim=16)
    if full:
        text = dict(_TOWER, num_hidden_layers=1, vocab_size=64, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model = tf.CLIPModel(tf.CLIPConfig(vision_config=vision.to_dict(), text_config=text, projection_dim=16))
    elif projection:
        model = tf.CLIPVisionModelWithProjection(vision)
    else:
        model = tf.CLIPVisionModel(vision)
    model.save_pretrained(folder)
    tf.CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return Path(folder)


def tiny_vit(folder: Path, *, image_size: int = 32) -> Path:
    """A random ViT (model type ``vit``, outside the registry): the generic pooled-output path."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tf.ViTModel(tf.ViTConfig(**_TOWER, image_size=image_size, patch_size=8)).save_pretrained(folder)
    tf.ViTImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return Path(folder)


def coloured_images(n: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list:
    """``n`` distinct RGB images: a random background colour, a random rectangle, random noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = size[1], size[0]
        arr = np.empty((h, w, 3), dtype=np.uint8)
        arr[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        arr[y0 : y0 + h // 2, x0 : x0 + w // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
        arr = np.clip(arr.astype(np.int16) + rng.integers(-20, 21, arr.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(arr, "RGB"))
    return out


def encode_jpeg(image, quality: int = 90) -> bytes:
    """A PIL image as base64 JPEG bytes (one bank line, without the newline)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue())


def write_bank(path: Path, images: list, lines: dict[int, bytes] | None = None) -> Path:
    """Write a bank: one base64 JPEG per line; ``lines`` replaces given rows by raw bytes (planted defects)."""
    rows = [encode_jpeg(img) for img in images]
    for row, raw in (lines or {}).items():
        rows[row] = raw
    Path(path).write_bytes(b"".join(r + b"\n" for r in rows))
    return Path(path)


def decode_bank(path: Path) -> list:
    """The images of a bank, decoded independently of vixml (the oracle for row order)."""
    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(line))).convert("RGB") for line in Path(path).read_bytes().split()]


def tiny_image_dataset(
    folder: Path, n_items: dict[str, int] | None = None, num_images: int = 3, size: int = 64, seed: int = 0
) -> dict[str, Path]:
    """Write banks + pickle-free maps for trn/tst/lbl; returns each split's bank path.

    Item i of a split has ``i % (num_images + 1)`` images whose rows are consecutive in the bank.
    """
    from vixml.data.image_maps import ImageMap, write_image_map

    n_items = n_items or {"trn": 6, "tst": 4, "lbl": 5}
    names = {"trn": "train", "tst": "test", "lbl": "labels"}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    banks = {}
    for k, (split, n) in enumerate(n_items.items()):
        counts = np.arange(n) % (num_images + 1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        images = coloured_images(int(indptr[-1]), seed=seed + k)
        stem = f"{names[split]}_imgs_{size}_{num_images}"
        banks[split] = write_bank(folder / f"{stem}.bin", images)
        write_image_map(folder / f"{stem}_map.npz", ImageMap(indptr, np.arange(indptr[-1], dtype=np.int64)))
    return banks
