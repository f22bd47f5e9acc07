"""Data parallelism of the trainer: one replica per rank, gradients averaged, weights kept identical.

Why not ``DistributedDataParallel``'s wrapper: the trainer calls ``encode_queries`` / ``encode_labels`` (and
PRIME's heads), never the model's ``forward``, and DDP's reducer is armed only by its own ``forward``. The
averaging DDP does is done here once per optimiser step instead: the gradients are flattened into buckets
and all-reduced (what DDP does, and with gradient accumulation what ``no_sync`` gives). With the embeddings
all-gathered with gradients (:func:`vixml.distributed.gather_with_grad`), the average equals the gradient of
one process on the global batch.

FSDP2 (``fully_shard``) for multi-billion decoders with LoRA: :func:`shard_decoder_layers` shards every
transformer block of a decoder over the ranks (tested on CPU gloo; not yet switched on by the trainer).
"""

from __future__ import annotations

import torch

from vixml import distributed
from vixml.errors import ConfigError

__all__ = ["average_gradients", "broadcast_parameters", "shard_decoder_layers"]

_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    out: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        if not out or size + t.numel() * t.element_size() > _BUCKET_BYTES or out[-1][0].dtype != t.dtype:
            out.append([])
            size = 0
        out[-1].append(t)
        size += t.numel() * t.element_size()
    return out


def average_gradients(model: torch.nn.Module) -> None:
    """Average every trainable parameter's gradient over the ranks (a parameter without one counts as zero)."""
    w = distributed.world()
    if not w.distributed:
        return
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=_device(params))
    dist.all_reduce(used, op=dist.ReduceOp.MAX)  # a parameter no rank used keeps no gradient (as in one process)
    params = [p for p, u in zip(params, used.tolist(), strict=True) if u > 0]
    for p in params:
        if p.grad is None:  # unused this step on this rank, used on another
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params]):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= w.size
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _device(params: list[torch.Tensor]) -> torch.device:
    return params[0].device if params else torch.device("cpu")


@torch.no_grad()
def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's trainable parameters and buffers on every rank (every replica starts from the same weights;
    frozen weights come from the same pretrained files and are not sent)."""
    if not distributed.world().distributed:
        return
    import torch.distributed as dist

    for t in [*(p for p in model.parameters() if p.requires_grad), *model.buffers()]:
        dist.broadcast(t.data, src=0)


def shard_decoder_layers(module: torch.nn.Module) -> torch.nn.Module:
    """FSDP2: shard each transformer block of ``module`` and then ``module`` itself over the ranks.

    ``module`` must be one whose ``forward`` is called (the Hugging Face model inside the backbone): FSDP2
    gathers a block's weights in its pre-forward hook and frees them after. Frozen (LoRA base) and trainable
    weights may share a block. Gradients are reduce-scattered (averaged) by FSDP itself, so the sharded
    parameters must not also go through :func:`average_gradients`. Not yet switched on by the trainer.

    Raises:
        ConfigError: no process group has been joined (run under torchrun).
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        raise ConfigError("FSDP sharding needs a process group: run under torchrun (NCCL on GPUs, gloo on CPU)")
    from torch.distributed.fsdp import fully_shard

    blocks = [m for m in module.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not blocks:
        raise ConfigError(f"FSDP sharding: {type(module).__name__} has no *DecoderLayer blocks (a decoder only)")
    for block in blocks:
        fully_shard(block)
    fully_shard(module)
    return module
