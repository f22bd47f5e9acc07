"""Training throughput with 2 gloo ranks against 1 process on CPU, and the communication cost per step.

Same run both ways: the planted synthetic data, a random 4-layer 128-wide BERT, global batch 128, the same
optimiser steps. Each rank encodes half of every batch; the embeddings are all-gathered with gradients and
the gradients averaged (``vixml.training.parallel``). On a 2-core box the two ranks share the cores, so no
speed-up is expected: the figure to read is the communication time per step (all-gather forward, its
backward all-reduce, the gradient average), timed around every collective; it includes waiting for the
slower rank, so it is an upper bound on the transfer cost.

Then a LoRA decoder (a random 4-layer 256-wide Qwen2, rank-8 adapters) on 2 ranks, replicated and FSDP2-sharded
(``train.fsdp``): seconds per step and the parameter bytes each rank holds between steps (its shards plus the
replicated heads), the memory FSDP saves.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STEPS = 12


def _setup(root: Path, quick: bool):
    from vixml.config import RunConfig, apply_overrides
    from vixml.data import load_dataset
    from vixml.testing.datasets import make_dataset
    from vixml.testing.models import make_tiny_bert

    data = make_dataset(root / "data", n_train=2048, n_test=16, n_labels=256, max_labels=3)
    ds = load_dataset(data)
    texts = list(ds.trn_texts) + list(ds.lbl_texts)
    model = make_tiny_bert(root / "bert", vocab_texts=texts, hidden=128, layers=2 if quick else 4, heads=4)
    cfg = apply_overrides(
        RunConfig(),
        [
            f"model.name_or_path={model}",
            "data.max_length=32",
            "train.batch_size=128",
            "train.device=cpu",
            "train.precision=fp32",
            "prototypes=null",
            "mining=null",
        ],
    )
    return cfg, data


def _decoder_config(root: Path, quick: bool, fsdp: bool):
    """A rank-8 LoRA Qwen2 (random, 256 wide) on the same data, replicated or FSDP2-sharded."""
    from vixml.config import RunConfig, apply_overrides
    from vixml.testing.models import make_tiny_qwen2

    model = root / "qwen2"
    if not model.exists():
        make_tiny_qwen2(model, hidden=256, layers=2 if quick else 4, heads=4, kv_heads=2, intermediate=1024)
    settings = [f"model.name_or_path={model}", "model.lora.r=8", "model.lora.alpha=16", "data.max_length=32"]
    settings += ["train.batch_size=64", "train.device=cpu", "train.precision=fp32", "prototypes=null", "mining=null"]
    return apply_overrides(RunConfig(), [*settings, f"train.fsdp={str(fsdp).lower()}"])


def _held_bytes(model: torch.nn.Module) -> int:
    """Parameter bytes this rank holds: a sharded parameter counts its local shard."""
    total = 0
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        total += local.numel() * local.element_size()
    return total


def _steps(cfg, data, out: Path, result: Path | None, steps: int) -> dict:
    """``steps`` optimiser steps of the trainer; seconds in total and inside collectives."""
    import torch.distributed as dist

    from vixml import distributed
    from vixml.data import load_dataset
    from vixml.models import build_dual_encoder
    from vixml.training.trainer import Trainer

    comm = {"s": 0.0, "calls": 0}
    originals = {}
    for name in ("all_gather", "all_reduce"):
        originals[name] = getattr(dist, name)

        def timed(*args, _f=originals[name], **kwargs):
            t = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                comm["s"] += time.perf_counter() - t
                comm["calls"] += 1

        setattr(dist, name, timed)
    try:
        ds = load_dataset(data)
        torch.manual_seed(0)
        model = build_dual_encoder(cfg, num_labels=ds.n_labels, device=torch.device("cpu"))
        trainer = Trainer(cfg, ds, model, out)
        model.train()
        batches = trainer.sampler.epoch_batches(0)
        trainer._loss(next(batches), np.random.default_rng(0))["loss"].backward()  # warm-up
        trainer._optimizer_step()
        comm.update(s=0.0, calls=0)
        start = time.perf_counter()
        for i in range(steps):
            trainer._loss(next(batches), np.random.default_rng(i))["loss"].backward()
            trainer._optimizer_step()
        seconds = time.perf_counter() - start
        held = _held_bytes(model)
    finally:
        for name, f in originals.items():
            setattr(dist, name, f)
    figures = {"s_per_step": seconds / steps, "comm_ms_per_step": 1e3 * comm["s"] / steps}
    figures["collectives_per_step"] = comm["calls"] / steps
    figures["param_mib_per_rank"] = held / 2**20
    if result is not None and distributed.is_main():
        result.write_text(json.dumps(figures))
    return figures


def run(quick: bool = False) -> dict:
    from vixml.testing.distributed import spawn

    steps = 4 if quick else STEPS
    torch.set_num_threads(1)  # what torchrun gives each rank (OMP_NUM_THREADS=1): a like-for-like comparison
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg, data = _setup(root, quick)
        one = _steps(cfg, data, root / "one", None, steps)
        spawn(_steps, 2, cfg, data, root / "two", root / "two.json", steps)
        two = json.loads((root / "two.json").read_text())
        decoder = {}
        for fsdp in (False, True):
            dcfg = _decoder_config(root, quick, fsdp)
            name = "fsdp" if fsdp else "replicas"
            spawn(_steps, 2, dcfg, data, root / name, root / f"{name}.json", steps)
            decoder[name] = json.loads((root / f"{name}.json").read_text())
    batch = 128
    rep, sh = decoder["replicas"], decoder["fsdp"]
    return {
        "decoder_2_ranks_replicas_s_per_step": round(rep["s_per_step"], 3),
        "decoder_2_ranks_fsdp_s_per_step": round(sh["s_per_step"], 3),
        "decoder_fsdp_vs_replicas_time": round(sh["s_per_step"] / rep["s_per_step"], 3),
        "decoder_replica_param_mib_per_rank": round(rep["param_mib_per_rank"], 2),
        "decoder_fsdp_param_mib_per_rank": round(sh["param_mib_per_rank"], 2),
        "decoder_fsdp_vs_replicas_memory": round(sh["param_mib_per_rank"] / rep["param_mib_per_rank"], 3),
        "global_batch": batch,
        "steps": steps,
        "1_rank_queries_per_s": round(batch / one["s_per_step"], 1),
        "2_ranks_queries_per_s": round(batch / two["s_per_step"], 1),
        "speedup_2_vs_1": round(one["s_per_step"] / two["s_per_step"], 3),
        "2_ranks_comm_ms_per_step": round(two["comm_ms_per_step"], 2),
        "2_ranks_comm_share_of_step": round(two["comm_ms_per_step"] / 1e3 / two["s_per_step"], 4),
        "2_ranks_collectives_per_step": two["collectives_per_step"],
        "threads_per_rank": 1,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
