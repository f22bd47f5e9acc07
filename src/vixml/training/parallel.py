"""Data parallelism of the trainer: replicas with averaged gradients, or FSDP2-sharded decoders.

Why not ``DistributedDataParallel``'s wrapper: the trainer calls ``encode_queries`` / ``encode_labels`` (and
PRIME's heads), never the model's ``forward``, and DDP's reducer is armed only by its own ``forward``. The
averaging DDP does is done here once per optimiser step instead: the gradients are flattened into buckets
and all-reduced (what DDP does, and with gradient accumulation what ``no_sync`` gives). With the embeddings
all-gathered with gradients (:func:`vixml.distributed.gather_with_grad`), the average equals the gradient of
one process on the global batch.

FSDP2 (``fully_shard``, ``train.fsdp``) for multi-billion decoders with LoRA: :func:`shard_model` shards
every transformer block, the token embeddings and the rest of the decoder over the ranks, so that a rank
holds 1/N of the weights between the forward passes. FSDP reduce-scatters (averages) those gradients
itself; the parameters it does not own (image projection, PRIME's heads, the head transform) stay replicas
averaged by :func:`average_gradients`. Checkpoints and saves see full tensors (:func:`full_weights`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from vixml import distributed
from vixml.errors import ConfigError

__all__ = [
    "average_gradients",
    "broadcast_parameters",
    "clip_grad_norm",
    "full_optimizer_state",
    "full_weights",
    "load_optimizer_state",
    "load_weights",
    "shard_decoder_layers",
    "shard_model",
    "wants_fsdp",
]

logger = logging.getLogger(__name__)

_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def _is_dtensor(t: torch.Tensor | None) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


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
    """Average every replicated trainable parameter's gradient over the ranks (a parameter without one counts
    as zero); FSDP-sharded parameters were already reduce-scattered in the backward pass."""
    w = distributed.world()
    if not w.distributed:
        return
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad and not _is_dtensor(p)]
    if not params:  # the same on every rank: all trainable weights are sharded
        return
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
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


@torch.no_grad()
def clip_grad_norm(model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` over replicated and FSDP-sharded gradients together (torch's own refuses the mix):
    the squared norms of the shards are summed over the ranks, the replicas' counted once."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not any(_is_dtensor(g) for g in grads):
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    import torch.distributed as dist

    shards = [g.to_local() for g in grads if _is_dtensor(g)]
    replicas = [g for g in grads if not _is_dtensor(g)]
    device = shards[0].device
    sharded = torch.stack([s.float().pow(2).sum() for s in shards]).sum()
    dist.all_reduce(sharded, op=dist.ReduceOp.SUM)
    replicated = sum((g.float().pow(2).sum().to(device) for g in replicas), torch.zeros((), device=device))
    total = (sharded + replicated).sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in [*shards, *replicas]:
        g.mul_(scale.to(g.dtype))
    return total


@torch.no_grad()
def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's trainable parameters and buffers on every rank (every replica starts from the same weights;
    frozen weights come from the same pretrained files and are not sent)."""
    if not distributed.world().distributed:
        return
    import torch.distributed as dist

    for t in [*(p for p in model.parameters() if p.requires_grad), *model.buffers()]:
        dist.broadcast(t.data, src=0)


def wants_fsdp(setting: bool | str, *, decoder: bool, precision: str) -> bool:
    """``train.fsdp`` resolved for this run: shard only on several ranks, only decoders, not with fp16.

    Raises:
        ConfigError: ``train.fsdp=true`` for an encoder, or with fp16 (a gradient scaler per shard would let
            the ranks disagree on skipping a step).
    """
    if setting is False or not distributed.world().distributed:
        return False
    if setting == "auto":
        if decoder and precision == "fp16":
            logger.info("train.fsdp auto: fp16 runs replicate the decoder (use bf16 to shard it)")
        return decoder and precision != "fp16"
    if not decoder:
        raise ConfigError("train.fsdp=true shards a decoder's blocks; this backbone is an encoder (use auto or false)")
    if precision == "fp16":
        raise ConfigError("train.fsdp=true does not run with fp16: use train.precision=bf16, or train.fsdp=false")
    return True


def shard_model(model: torch.nn.Module) -> None:
    """FSDP2-shard the backbone of a :class:`~vixml.models.DualEncoder` whose backbone is a decoder.

    Units: each block, the token embeddings (the backbone embeds the prompt, the texts and the image slots
    before the decoder's forward) and the backbone itself (the root: the rest of the decoder, its head).
    """
    from torch.distributed.fsdp import fully_shard

    hf = model.backbone.model
    shard_decoder_layers(hf)
    fully_shard(hf.get_input_embeddings())
    fully_shard(model.backbone)
    shared = sum(p.numel() for p in model.parameters() if _is_dtensor(p))
    logger.info("FSDP2: %.1fM decoder parameters sharded over %d ranks", shared / 1e6, distributed.world().size)


def shard_decoder_layers(module: torch.nn.Module) -> torch.nn.Module:
    """FSDP2: shard each transformer block of ``module`` over the ranks (the caller shards the root).

    ``module`` must be one whose ``forward`` is called (a Hugging Face decoder): FSDP2 gathers a block's
    weights in its pre-forward hook and frees them after. Frozen (LoRA base) and trainable weights may share
    a block. Gradients are reduce-scattered (averaged) by FSDP itself, so the sharded parameters are left out
    of :func:`average_gradients`.

    Raises:
        ConfigError: no process group has been joined (run under torchrun), or ``module`` has no blocks.
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
    return module


@contextlib.contextmanager
def full_weights(model: torch.nn.Module, *, trainable_only: bool = False) -> Iterator[None]:
    """Inside the block, ``model``'s FSDP-sharded parameters (the trainable ones only, if asked) are plain full
    tensors, so that ``state_dict`` and the Hugging Face / PEFT savers see the whole model; outside, shards.

    Every rank must enter it (each parameter is all-gathered); a full model then lives on every rank for the
    block's duration, as a replica would. Nothing is done for a model that is not sharded.
    """
    if not distributed.is_sharded(model):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()  # the sharded parameters registered (a forward may leave the root unsharded)
    swapped = []
    with torch.no_grad():
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                if _is_dtensor(p) and (p.requires_grad or not trainable_only):
                    module._parameters[name] = torch.nn.Parameter(p.full_tensor(), requires_grad=p.requires_grad)
                    swapped.append((module, name, p))
    try:
        yield
    finally:
        for module, name, p in swapped:
            module._parameters[name] = p


@torch.no_grad()
def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state, strict=False)`` where the sharded parameters take their shard of the full
    tensors in ``state`` (every rank holds them: no communication)."""
    if not distributed.is_sharded(model):
        model.load_state_dict(state, strict=False)
        return
    from torch.distributed.tensor import distribute_tensor

    params = dict(model.named_parameters())
    plain = {}
    for name, value in state.items():
        p = params.get(name)
        if _is_dtensor(p):
            full = value.to(device=p.device, dtype=p.dtype)
            p.copy_(distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None))
        else:
            plain[name] = value
    model.load_state_dict(plain, strict=False)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` with the moments of sharded parameters gathered into full tensors (every
    rank must call it), so that a checkpoint written by rank 0 holds all of them."""
    state = optimizer.state_dict()  # its per-parameter dicts are the optimiser's own: replaced, not changed
    for index in sorted(state["state"]):  # the same order of all-gathers on every rank
        entry = state["state"][index]
        state["state"][index] = {k: v.full_tensor() if _is_dtensor(v) else v for k, v in entry.items()}
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict`` where a sharded parameter's moments take their shard of the full ones."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if any(_is_dtensor(p) for p in params):
        from torch.distributed.tensor import distribute_tensor

        def shard(value, p):
            if torch.is_tensor(value) and not _is_dtensor(value) and tuple(value.shape) == tuple(p.shape):
                return distribute_tensor(value.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
            return value

        moments = {}
        for index, entry in state["state"].items():
            p = params[index]
            moments[index] = {k: shard(v, p) for k, v in entry.items()} if _is_dtensor(p) else entry
        state = {**state, "state": moments}
    optimizer.load_state_dict(state)
