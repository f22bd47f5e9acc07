"""Decoder backbones on CPU: the cost of our wrapper (prompt assembly, pooling, LoRA) and of checkpointing.

Two random Qwen2 configurations: a tiny one (hidden 256, 4 layers) and one with Qwen2.5-0.5B's width
(hidden 896, MLP 4864, 14 heads, 2 KV heads) cut to 2 layers. Both carry the same LoRA adapters (r=16 on
q,k,v,o,gate,up,down). One training step = forward, L2-normalised embeddings, an InfoNCE-like loss over the
batch, backward.

- ``bare``: the PEFT-wrapped Hugging Face model called on the already assembled prompt token ids (image
  slots replaced by the pad id, same mask and width), mean-pooled by hand: the peer.
- ``ours``: :meth:`TextBackbone.encode` on the raw text ids plus three image-token slots per item (some
  missing): assembler (literal prompt segments, EOS, compaction), embeddings, pooling, normalisation.

Throughput is real tokens (the assembled mask's sum, equal for both) per CPU-second of this process, with
one intra-op thread: medians of interleaved repeats, robust to other processes sharing the machine.
``ours_vs_bare`` is the ratio (target >= 0.85).
Memory: each configuration runs one training step (a larger batch) in a fresh subprocess, with and without
gradient checkpointing; the figure is the peak RSS growth over the loaded model and a warm-up step.

Usage: ``python benchmarks/bench_decoder.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from timing import timed  # noqa: E402
from vixml.models.backbone import TextBackbone  # noqa: E402

SIZES = {
    "h256_l4": {"hidden": 256, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 512},
    "h896_l2": {"hidden": 896, "layers": 2, "heads": 14, "kv_heads": 2, "intermediate": 4864},
}
LORA_R = 16
NUM_IMAGES = 3


def _build(path: Path, checkpointing: bool) -> TextBackbone:
    backbone = TextBackbone.from_pretrained(path, gradient_checkpointing=checkpointing)
    backbone.add_lora(r=LORA_R, alpha=float(LORA_R))
    return backbone.train()


def _batch(backbone: TextBackbone, size: int, seed: int = 0):
    """Texts of 12-24 random tokens (right-padded) and 3 image slots per item, about a third of them missing."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(backbone.tokenizer)
    lengths = torch.randint(12, 25, (size,), generator=g)
    ids = torch.randint(10, vocab, (size, int(lengths.max())), generator=g)
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
    ids = torch.where(mask.bool(), ids, backbone.tokenizer.pad_token_id)
    images = torch.randn(size, NUM_IMAGES, backbone.hidden_size, generator=g) * 0.02
    image_mask = (torch.rand(size, NUM_IMAGES, generator=g) > 0.33).long()
    return ids, mask, images, image_mask


def _loss(emb: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(emb @ emb.T * 20.0, dim=1).mean()


def _steps(backbone: TextBackbone, batch) -> tuple[dict, int]:
    ids, mask, images, image_mask = batch
    layout = backbone.assembler(True).assemble_ids(ids, mask, image_mask)
    peer_ids = layout.inputs_embeds.clamp(min=0)  # image slots -> a real token id (pad is 0 here)
    peer_ids = torch.where(layout.inputs_embeds < 0, backbone.tokenizer.pad_token_id, peer_ids)
    peer_mask = layout.attention_mask
    tokens = int(peer_mask.sum())

    def bare():
        states = backbone.model(input_ids=peer_ids, attention_mask=peer_mask, use_cache=False).last_hidden_state
        weights = peer_mask.unsqueeze(-1).float()
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1)
        _loss(torch.nn.functional.normalize(pooled, dim=-1)).backward()
        backbone.zero_grad(set_to_none=True)

    def ours():
        _loss(backbone.encode(ids, mask, extra_embeds=images, extra_mask=image_mask)).backward()
        backbone.zero_grad(set_to_none=True)

    return {"bare": bare, "ours": ours}, tokens


def _rates(steps: dict, tokens: int, repeats: int) -> dict[str, float]:
    """Median tokens per CPU-second of each step, repeats interleaved.

    CPU time of this process (one intra-op thread, see :func:`run`) rather than wall time: on a shared
    machine other processes steal the cores in bursts, which wall time charges to whichever step was running.
    """
    times = timed(steps, repeats, warmup=True)
    return {name: tokens / t.cpu for name, t in times.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _probe_memory(path: Path, batch_size: int, checkpointing: bool) -> dict:
    """One training step in this (fresh) process: peak RSS growth over the loaded model, batch and a warm-up.

    The warm-up (a 2-item step) takes the one-time allocations (kernels' workspaces, LoRA gradients) out of
    the figure, which is then what the step's activations and their gradients need.
    """
    torch.set_num_threads(1)
    backbone = _build(path, checkpointing)
    warm_up, _ = _steps(backbone, _batch(backbone, 2, seed=1))
    warm_up["ours"]()
    steps, _ = _steps(backbone, _batch(backbone, batch_size))
    before = _rss_mb()
    steps["ours"]()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_growth_mb": peak - before}


def _memory(path: Path, batch_size: int, checkpointing: bool) -> float:
    command = [sys.executable, __file__, "--probe", str(path), str(batch_size), str(int(checkpointing))]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_growth_mb"]


def run(quick: bool = False) -> dict:
    batch_size = 8 if quick else 16
    memory_batch = 64
    repeats = 5 if quick else 9
    figures: dict = {"batch": batch_size, "memory_batch": memory_batch, "lora_r": LORA_R, "torch_threads": 1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time is only meaningful without threads spinning at barriers
    try:
        _measure(figures, batch_size, memory_batch, repeats)
    finally:
        torch.set_num_threads(threads)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def _measure(figures: dict, batch_size: int, memory_batch: int, repeats: int) -> None:
    from vixml.testing.models import make_tiny_qwen2

    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            path = make_tiny_qwen2(Path(tmp) / name, max_positions=512, **size)
            backbone = _build(path, checkpointing=False)
            steps, tokens = _steps(backbone, _batch(backbone, batch_size))
            rates = _rates(steps, tokens, repeats)
            backbone.set_gradient_checkpointing(True)
            rates["ours_checkpointed"] = _rates({"ours": steps["ours"]}, tokens, repeats)["ours"]
            figures[f"{name}_tokens_per_step"] = tokens
            figures |= {f"{name}_{step}_tokens_per_cpu_s": rate for step, rate in rates.items()}
            figures[f"{name}_ours_vs_bare"] = rates["ours"] / rates["bare"]
            figures[f"{name}_checkpointed_vs_not"] = rates["ours_checkpointed"] / rates["ours"]
            plain = _memory(path, memory_batch, checkpointing=False)
            checkpointed = _memory(path, memory_batch, checkpointing=True)
            figures[f"{name}_step_peak_mb"] = plain
            figures[f"{name}_step_peak_checkpointed_mb"] = checkpointed
            figures[f"{name}_checkpointed_memory_ratio"] = checkpointed / plain if plain > 0 else float("nan")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8 and 5 repeats instead of 16 and 9")
    parser.add_argument("--probe", nargs=3, metavar=("PATH", "BATCH", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        path, batch, checkpointing = args.probe
        print(json.dumps(_probe_memory(Path(path), int(batch), bool(int(checkpointing)))))
    else:
        print(json.dumps(run(quick=args.quick), indent=2))
