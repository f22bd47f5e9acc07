"""Image-embedding throughput on CPU, and where the time goes: decoding/resizing versus the model.

A random-weight SigLIP vision tower of base size (patch 16, 224 px, 12 layers x 768; ``--quick``: 4 x 192)
embeds a bank of 384x384 base64 JPEGs (the banks' format). Measured separately, in images per second:

- ``decode``: bank line -> base64 decode -> JPEG decode -> the SigLIP image processor (resize, normalise),
  through :func:`vixml.vision.embed_inputs.bank_batches`, with 0 and 2 data-loader workers (on 8x the
  images, so that starting the worker processes, a one-off cost per bank, weighs as little as in a real run);
- ``model``: the forward pass alone on preprocessed batches;
- ``end_to_end``: :func:`vixml.vision.embed.embed_bank` (decode + model + resumable writing), 0 and 2 workers.

``decode_share`` is the decoding time per image over decoding + model time per image (inline); the
``w2_vs_w0`` ratios show what overlapping decoding with the model buys on this machine.

Usage: ``python benchmarks/bench_embed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from timing import timed
from vixml.testing import vision as sv  # noqa: E402
from vixml.vision.embed import embed_bank  # noqa: E402
from vixml.vision.embed_inputs import bank_batches  # noqa: E402
from vixml.vision.models import load_vision_model  # noqa: E402

REPEATS = 3
BATCH = 16
DECODE_FACTOR = 8


def _model(folder: Path, quick: bool) -> Path:
    """A random SigLIP vision tower (224 px, patch 16) with its image processor, saved to ``folder``."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    size = dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3)
    if not quick:
        size = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    tf.SiglipVisionModel(tf.SiglipVisionConfig(**size, image_size=224, patch_size=16)).save_pretrained(folder)
    tf.SiglipImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def run(quick: bool) -> dict:
    import transformers

    transformers.logging.set_verbosity_error()
    n_images = 32 if quick else 16
    repeats = 2 if quick else REPEATS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        encoder = load_vision_model(str(_model(tmp / "siglip", quick)), device="cpu")
        images = sv.coloured_images(n_images, seed=0, size=(384, 384))
        bank = sv.write_bank(tmp / "train_imgs_384_3.bin", images)
        big = sv.write_bank(tmp / "big.bin", images * DECODE_FACTOR)  # decoding alone is fast: time more of it
        batches = [inputs for _, inputs, _ in bank_batches(encoder.preprocess, bank, batch_size=BATCH)]

        def decode(workers: int):
            return lambda: sum(1 for _ in bank_batches(encoder.preprocess, big, batch_size=BATCH, workers=workers))

        def model():
            for inputs in batches:
                encoder.encode(inputs)

        def end_to_end(workers: int):
            return lambda: embed_bank(
                encoder, bank, tmp / "e.npy", batch_size=BATCH, workers=workers, overwrite=True, progress=False
            )

        seconds = {
            "decode_w0": timed(decode(0), repeats, warmup=True).wall,
            "decode_w2": timed(decode(2), repeats, warmup=True).wall,
            "model": timed(model, repeats, warmup=True).wall,
            "end_to_end_w0": timed(end_to_end(0), repeats, warmup=True).wall,
            "end_to_end_w2": timed(end_to_end(2), repeats, warmup=True).wall,
        }
    seconds["decode_w0"] /= DECODE_FACTOR
    seconds["decode_w2"] /= DECODE_FACTOR
    rate = {f"{name}_img_per_s": n_images / s for name, s in seconds.items()}
    return {
        "model": "random SigLIP " + ("4x192" if quick else "base 12x768") + " patch16 224, fp32, CPU",
        "n_images": n_images,
        "batch_size": BATCH,
        **{k: round(v, 2) for k, v in rate.items()},
        "decode_ms_per_img": round(1000 * seconds["decode_w0"] / n_images, 2),
        "model_ms_per_img": round(1000 * seconds["model"] / n_images, 2),
        "decode_share": round(seconds["decode_w0"] / (seconds["decode_w0"] + seconds["model"]), 3),
        "end_to_end_w2_vs_w0": round(seconds["end_to_end_w0"] / seconds["end_to_end_w2"], 3),
        "decode_w2_vs_w0": round(seconds["decode_w0"] / seconds["decode_w2"], 3),
        "end_to_end_w0_vs_model": round(seconds["model"] / seconds["end_to_end_w0"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model and fewer images")
    print(json.dumps(run(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
