"""Several processes, one run: the world of a ``torchrun`` launch and the few collectives vixml needs.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`session` joins the process group they
describe (NCCL on GPUs, gloo on CPU) and leaves it afterwards. Without them the world is one process and
every helper here is the identity, so a single process is the special case, not a separate code path.

What is exchanged and why (docs/method.md 4: the batch is the negative pool): query and label embeddings are
all-gathered *with gradients* (:func:`gather_with_grad`), so every rank computes the loss over the global
batch; embeddings of whole splits are sharded by batches of rows and gathered (:func:`shard_batches`,
:func:`gather_rows`); small Python objects (clusters, metrics, decisions) are broadcast from rank 0.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "World",
    "world",
    "session",
    "is_main",
    "backend",
    "barrier",
    "is_sharded",
    "broadcast_object",
    "all_gather_objects",
    "gather_with_grad",
    "gather_rows",
    "shard_batches",
    "split_evenly",
    "any_rank",
]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the launch: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # What a training loop asks of the other ranks, each the identity for one process: the loop holds one
    # World and never asks whether it is distributed.
    def on_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 alone, its result on every rank (a clustering every replica shares)."""
        return broadcast_object(compute() if self.is_main else None)

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return broadcast_object(obj)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (a stop, a checkpoint that is due); a collective when distributed."""
        return any_rank(flag) if self.distributed else flag

    def all_gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order; None for one process (nothing to exchange)."""
        return all_gather_objects(obj) if self.distributed else None

    def barrier(self) -> None:
        """Wait until every rank is here."""
        barrier()

    def share(self, n: int) -> tuple[tuple[int, ...], slice, int]:
        """This rank's contiguous share of an n-item batch: (every rank's size, its slice, rows to keep).

        A rank whose share is empty (a last batch smaller than the world) encodes one item and keeps none,
        so every rank runs the same collectives.
        """
        if not self.distributed:
            return (n,), slice(0, n), n
        ranges = split_evenly(n, self.size)
        start, stop = ranges[self.rank]
        sizes = tuple(b - a for a, b in ranges)
        if stop == start:
            return sizes, slice(0, 1), 0
        return sizes, slice(start, stop), stop - start

    def gather(self, local: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        """Every rank's rows of a batch, differentiably (:func:`gather_with_grad`)."""
        return gather_with_grad(local, sizes)


def world() -> World:
    """The current world: the joined process group if any, else what the torchrun variables say, else one."""
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), local)
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), local)


def is_main() -> bool:
    """Whether this process writes files and logs progress (rank 0; always true for one process)."""
    return world().is_main


def backend() -> str | None:
    """The joined process group's backend (``"nccl"``, ``"gloo"``), or None outside one; run.json records it."""
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def session(device: torch.device | None = None, *, timeout_minutes: float = 30.0) -> Iterator[World]:
    """Join the process group that the torchrun variables describe (if any) for the block, then leave it.

    A group that is already joined (a caller or a test that set it up) is used and left alone. On CUDA each
    rank takes the GPU of its ``LOCAL_RANK``.
    """
    import torch.distributed as dist

    env = World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    launched = "TORCHELASTIC_RUN_ID" in os.environ  # torchrun, even with one process (the 1-GPU NCCL check)
    if dist.is_initialized() or (env.size == 1 and not launched):
        yield world()
        return
    cuda = device is not None and device.type == "cuda"
    if cuda:
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= count:
            from vixml.errors import ConfigError

            raise ConfigError(
                f"rank {env.rank} (LOCAL_RANK {local}) has no GPU: this machine has {count} CUDA device(s); "
                f"start at most {count} processes per machine (--nproc / torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA run under torchrun, else ``device``."""
    if device.type == "cuda" and world().distributed:
        return torch.device("cuda", world().local_rank)
    return device


def barrier() -> None:
    """Wait until every rank is here (rank 0 has written what the others will read)."""
    if _active():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any = None) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects: clusters, metrics, a decision)."""
    if not _active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (one element for one process)."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank: a stop or a checkpoint decision all ranks take together."""
    if not _active():
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def is_sharded(module: torch.nn.Module) -> bool:
    """Whether FSDP2 has sharded some of ``module``'s parameters (DTensors): then every rank must run the same
    forward passes (each one all-gathers weights), and not under ``torch.inference_mode`` (FSDP2 swaps the
    parameters in place, which inference tensors do not allow)."""
    if not _active():
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


def _comm_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(n)``, sizes differing by at most one."""
    sizes = np.full(parts, n // parts) + (np.arange(parts) < n % parts)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [(int(bounds[r]), int(bounds[r + 1])) for r in range(parts)]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather of (n_r, D) rows along dim 0; the backward all-reduces (sums) the gradient of the gathered
    tensor and keeps this rank's rows, so that after the optimiser's gradient average every parameter has the
    gradient of the global-batch loss."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, sizes: tuple[int, ...], rank: int) -> torch.Tensor:  # noqa: D102
        import torch.distributed as dist

        ctx.sizes, ctx.rank = sizes, rank
        width = max(sizes)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_with_grad(local: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Concatenate every rank's ``local`` rows (rank r holds ``sizes[r]`` rows), differentiably.

    With one process, ``local`` itself. The gradient reaching ``local`` is the sum over ranks of the gradient
    of the gathered tensor: every rank computes the same global loss, so that is ``size`` times this rank's
    share, and the average of parameter gradients over ranks (:func:`vixml.training.parallel.average_gradients`)
    is exactly the single-process gradient.
    """
    if not _active():
        return local
    return _GatherWithGrad.apply(local, tuple(int(s) for s in sizes), world().rank)


def shard_batches(n: int, batch_size: int, order: np.ndarray | None = None) -> np.ndarray:
    """The positions (into ``order``, default ``arange(n)``) that this rank embeds: whole batches, round robin.

    Sharding by whole batches of the length-sorted order keeps each forward pass the same as in one process,
    so a sharded embedding equals the single-process one.
    """
    w = world()
    order = np.arange(n) if order is None else np.asarray(order)
    if not w.distributed:
        return order
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    mine = batches[w.rank :: w.size]
    return np.concatenate(mine) if mine else np.zeros(0, dtype=order.dtype)


def gather_rows(rows: np.ndarray, values: np.ndarray, n: int, *, to_all: bool = True) -> np.ndarray | None:
    """Assemble the (n, D) array whose rows ``rows`` this rank computed as ``values`` (float32).

    ``to_all``: every rank receives the whole array (an all-gather); otherwise only rank 0 does (the others
    get None), which is what evaluation and prediction need and keeps the other ranks' memory to their shard.
    """
    if not _active():
        out = np.empty((n, values.shape[1]), dtype=np.float32)
        out[rows] = values
        return out
    import torch.distributed as dist

    w = world()
    dim = int(values.shape[1]) if values.size or values.ndim == 2 else 0
    dims = all_gather_objects((len(rows), dim))
    width = max(c for c, _ in dims)
    dim = max(d for _, d in dims)
    device = _comm_device()
    idx = torch.full((width,), -1, dtype=torch.int64)
    idx[: len(rows)] = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    val = torch.zeros((width, dim), dtype=torch.float32)
    if len(rows):
        val[: len(rows)] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    idx, val = idx.to(device), val.to(device)
    if to_all:
        idxs = [torch.empty_like(idx) for _ in range(w.size)]
        vals = [torch.empty_like(val) for _ in range(w.size)]
        dist.all_gather(idxs, idx)
        dist.all_gather(vals, val)
    else:  # gloo and nccl both implement gather to one rank
        idxs = [torch.empty_like(idx) for _ in range(w.size)] if w.is_main else None
        vals = [torch.empty_like(val) for _ in range(w.size)] if w.is_main else None
        if dist.get_backend() == "nccl":  # nccl gather needs lists on every rank
            idxs = idxs or [torch.empty_like(idx) for _ in range(w.size)]
            vals = vals or [torch.empty_like(val) for _ in range(w.size)]
            dist.all_gather(idxs, idx)
            dist.all_gather(vals, val)
        else:
            dist.gather(idx, idxs, dst=0)
            dist.gather(val, vals, dst=0)
        if not w.is_main:
            return None
    out = np.empty((n, dim), dtype=np.float32)
    for i, v, (count, _) in zip(idxs, vals, dims, strict=True):
        out[i[:count].cpu().numpy()] = v[:count].cpu().numpy()
    return out
