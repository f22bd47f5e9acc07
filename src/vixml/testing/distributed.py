"""Several gloo ranks on one CPU for the distributed tests: spawn workers that join one process group.

Each worker runs a function of this module (spawned processes import it by name) with ``RANK`` and
``WORLD_SIZE`` set, as torchrun would, and writes what rank 0 saw to a file the test reads.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, world_size: int, *args) -> None:
    """Run ``fn(*args)`` on ``world_size`` gloo ranks (torchrun's variables set); raise if any rank fails."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_worker, args=(world_size, port, fn, args), nprocs=world_size, join=True)


def _worker(rank: int, world_size: int, port: int, fn, args) -> None:
    import torch.distributed as dist

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def one_step(cfg, data_dir, out_dir, result: Path | None, train_mode: bool = False) -> dict:
    """One training step on the first batch (in eval mode unless ``train_mode``: a model without dropout, so
    that one process and two ranks see the same model): the loss parts, the averaged and clipped gradients,
    their norm and the query-bank rows filled."""
    from vixml import distributed
    from vixml.data import load_dataset
    from vixml.models import build_dual_encoder
    from vixml.training.parallel import average_gradients, clip_grad_norm
    from vixml.training.trainer import Trainer

    ds = load_dataset(data_dir)
    torch.manual_seed(0)
    model = build_dual_encoder(cfg, num_labels=ds.n_labels, device=torch.device("cpu"))
    trainer = Trainer(cfg, ds, model, out_dir)
    for hook in trainer.hooks:  # PRIME's start (free vectors, centroids), as fit() begins
        hook.on_fit_start(trainer)
    model.train(train_mode)  # train mode: gradient checkpointing recomputes activations
    batch = next(trainer.sampler.epoch_batches(0))
    parts = trainer._loss(batch, np.random.default_rng(0))
    parts["loss"].backward()
    average_gradients(model)
    norm = clip_grad_norm(model, 1e-3)  # small enough to clip: the gradients compared are the clipped ones
    out = {
        "parts": {k: float(v.detach()) for k, v in parts.items()},
        "grads": {n: _full(p.grad).clone() for n, p in model.named_parameters() if p.grad is not None},
        "bank": trainer.bank.clone(),
        "norm": float(_full(norm)),
        "sharded": distributed.is_sharded(model),
    }
    if result is not None and distributed.is_main():
        torch.save(out, result)
    return out


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def train_run(
    cfg, data_dir, out_dir, kill_at: int | None = None, resume: bool = False, term_at: tuple | None = None
) -> None:
    """``vixml.training.train`` on this rank; ``kill_at``: every rank dies after that optimiser step;
    ``term_at=(rank, step)``: that rank alone gets SIGTERM after that step (the others must stop with it)."""
    import signal

    from vixml import distributed
    from vixml.errors import TrainingInterrupted
    from vixml.training import train

    class Killed(Exception):
        pass

    def kill(step: int) -> None:
        if step == kill_at:
            raise Killed
        if term_at is not None and (distributed.world().rank, step) == tuple(term_at):
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        train(cfg, data_dir, out_dir, resume=resume, step_callbacks=[kill])
    except (Killed, TrainingInterrupted):
        pass
