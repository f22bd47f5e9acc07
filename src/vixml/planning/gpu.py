"""Peak GPU memory of a training run, estimated from its config without loading weights (``vixml memory``).

Why: a 7B decoder at docs/method.md's batch of 2048 queries + 2048 labels does not fit every GPU, and finding that
out by crashing costs a model download and minutes of loading. The estimate is an ESTIMATE: parameter counts
are exact (the backbone is built on the meta device from its config), activations follow the formula below.

Terms (bytes): weights (backbone in its dtype; LoRA adapters, image projection, transform, LPN and free vectors
in fp32), buffers (PRIME centroids L x d fp32, with ``num_labels``), gradients (one per trainable parameter, in
its dtype), optimizer states (``torch.optim.AdamW``, the trainer's optimizer: two moments per trainable
parameter in the parameter's dtype; PEFT keeps adapters in fp32, so for LoRA they are fp32), autocast weight
copies (16-bit copies of fp32 linear weights, kept for backward), activations, and the loss's B x B score
matrices and LPN activations (small). Peak = all of these; the AdamW step's foreach temporaries (one copy of the
trainable parameters) only count when larger than the activations, which are freed by then.

Activations (per layer and per token, generalising Korthikanti et al. 2022, "Reducing Activation Recomputation
in Large Transformer Models", whose GPT layer holds s*b*h*(34 + 5*a*s/h) bytes in 16-bit) are the tensors
autograd saves in a Hugging Face layer with fused (SDPA/flash) attention, e = compute bytes (2 under 16-bit
autocast), n = bytes of the weights/residual stream, h hidden, q = heads * head_dim, I intermediate, r LoRA rank:

* norms: RMSNorm 4h + 4 (input upcast to fp32, rsqrt) + n*h when its weight trains; LayerNorm 4h + 8;
* attention: e*4q (q, k and v repeated to q heads under a padding mask, output) + 4*heads (logsumexp) + e*s
  (mask); eager attention adds (4 + e)*heads*s (softmax, probabilities), as Korthikanti's 5as term;
* linear inputs: full fine-tuning saves e*h for q/k/v and for the MLP input (once, or once per linear when
  fp32 inputs are cast under autocast) and e*I for the down projection; under 16-bit autocast each LoRA-adapted
  linear saves its own copy of its input (PEFT casts it to the fp32 adapter, autocast back) plus e*r (in fp32
  the adapters share the inputs full fine-tuning saves; 16-bit weights without autocast are approximated);
* MLP: e*3I when gated (SwiGLU/GeGLU), e*I otherwise; hidden dropout (encoders): one byte per element.

These terms reproduce, to the byte, the saved tensors of Qwen2/Qwen3/Llama/Gemma 3/BERT/DistilBERT layers on
CPU (``torch.autograd.graph.saved_tensors_hooks``, dropout off; tests/models/test_memory.py); CUDA's fused
attention kernels save the same tensors, and its dropout masks take the one byte counted here. With gradient
checkpointing a layer keeps only its input (n*h per token) and one layer is recomputed at a time. Both
encodings of a step (B queries of length s_q, B labels of length s_l, image tokens and decoder prompt tokens
included) are held together, plus the backward pass's working set (the gradients of one layer's MLP
intermediates, e*3I when gated, and two of the residual stream, 2*n*h, per token). Sequences are
taken at full length (batches pad to their longest item, so real batches are usually smaller). What dominates:
for decoders the layers' activations (checkpointing cuts them by an order of magnitude), then the weights;
for encoders the activations; PRIME's free vectors (65,536 x d with gradients and AdamW states) and centroids
(L x d) matter for wide models and large label sets. Not counted: the CUDA context and allocator
fragmentation (the headroom of the suggestion), the query-embedding bank and image banks (kept in CPU memory).

On N ranks (``ranks``, torchrun) the estimate is per rank: each encodes ceil(B/N) queries and labels, while
the loss's score matrices cover the gathered global batch; with FSDP2 (``train.fsdp`` for decoders) a rank
holds 1/N of the backbone's weights, of the LoRA adapters and of their gradients and AdamW moments, plus the
weights gathered for the unit in flight (two blocks, current and prefetched, or the token embeddings, the
larger); PRIME's heads and the image projection stay whole on every rank.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from vixml.errors import ConfigError
from vixml.planning.backbone import KNOWN_MODELS, BackboneShape, backbone_shape

if TYPE_CHECKING:
    from rich.table import Table

    from vixml.config import RunConfig

__all__ = [
    "KNOWN_MODELS",
    "BackboneShape",
    "MemoryEstimate",
    "backbone_shape",
    "estimate_memory",
    "layer_activation_bytes",
]

logger = logging.getLogger(__name__)

GIB = 1024**3
HEADROOM = 0.10  # fraction of the GPU left free for fragmentation and kernels' workspaces
CONTEXT_BYTES = GIB  # CUDA context, cuBLAS/cuDNN handles: outside PyTorch's allocator
DEFAULT_VISION_DIM = 1152  # SigLIP2-so400m pooled image embedding (docs/method.md 3)


def layer_activation_bytes(
    shape: BackboneShape, *, e: int, n: int, full_ft: bool, lora_r: int, seq_len: int, eager: bool = False
) -> int:
    """Bytes autograd saves per token in one layer (the formula of the module docstring).

    Args:
        shape: the backbone.
        e: bytes of a compute element (2 under 16-bit autocast or 16-bit weights, else 4).
        n: bytes of the weights, hence of the residual stream.
        full_ft: every weight trains (else LoRA adapters only, on ``shape.lora_layer_inputs``).
        lora_r: LoRA rank (ignored when ``full_ft``).
        seq_len: sequence length s (attention mask, eager attention matrices).
        eager: eager attention (stores the softmax probabilities) instead of SDPA/flash.
    """
    h, inter, heads = shape.hidden_size, shape.intermediate_size, shape.num_heads
    q, kv = heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    if shape.rms_norm:
        norm = 4 * h + 4 + (n * h if full_ft else 0)
        total = shape.norms_per_layer * norm
        if shape.head_norms:
            total += (4 + (n if full_ft else 0)) * (q + kv) + 4 * (heads + shape.num_kv_heads)
    else:
        total = shape.norms_per_layer * (4 * h + 8)
    total += e * 4 * q + 4 * heads + e * seq_len  # q, k, v (repeated to q heads), output; logsumexp; mask
    if eager:
        total += (4 + e) * heads * seq_len + ((1 + e) * heads * seq_len if shape.attention_dropout > 0 else 0)
    total += e * (3 if shape.gated_mlp else 1) * inter + shape.dropout_sites * h
    if full_ft:
        cast = n != e  # fp32 inputs cast to 16 bits under autocast: one private copy per linear
        total += e * h * ((shape.attn_in_linears + shape.mlp_in_linears) if cast else 2) + e * inter
    elif e == 4:  # fp32 compute: the adapters read the very tensors full fine-tuning would save
        total += e * (2 * h + inter) + e * lora_r * len(shape.lora_layer_inputs)
    else:  # 16-bit compute: each adapter casts its input to fp32 and autocast back, a private copy
        total += sum(e * (d_in + lora_r) for d_in in shape.lora_layer_inputs)
    return total


class HeadSizes(NamedTuple):
    """Parameters of the heads a run adds to its backbone, and bytes of PRIME's per-label buffers."""

    projection: int
    transform: int
    lpn: int
    free_vectors: int
    label_buffers: int


def head_sizes(config: RunConfig, num_labels: int | None, *, hidden: int, dim: int) -> HeadSizes:
    """Count the heads on the modules the builder makes (:func:`vixml.models.build.build_heads` and the
    backbone's output transform), built on the meta device: a change to a head changes its count here.

    ``num_labels`` None: the free vectors are the configured number and PRIME's per-label buffers (centroids,
    label map, flags) are not counted.
    """
    import torch

    from vixml.models.build import build_heads

    pc, ic = config.prototypes, config.images
    vision = (ic.embedding_dim or DEFAULT_VISION_DIM) if ic is not None else None
    labels = num_labels or (2 * pc.num_free_vectors if pc is not None else 2)  # L/2 free vectors: all of them
    with torch.device("meta"):
        prototypes, projection = build_heads(config, num_labels=labels, embedding_dim=dim, hidden_size=hidden,
                                             vision_dim=vision)  # fmt: skip
        transform = torch.nn.Linear(hidden, config.model.transform) if config.model.transform else None

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    buffers = sum(b.numel() * b.element_size() for b in prototypes.buffers()) if prototypes is not None else 0
    return HeadSizes(
        projection=count(projection),
        transform=count(transform),
        lpn=count(prototypes.lpn) if prototypes is not None else 0,
        free_vectors=prototypes.free_vectors.numel() if prototypes is not None else 0,
        label_buffers=buffers if num_labels else 0,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak GPU memory of one training step (all sizes in bytes; see the module docstring).

    ``peak`` is for the configured checkpointing setting; ``peak_checkpointing`` / ``peak_no_checkpointing`` for
    either. The suggestion (``suggested_*``) fits ``budget`` = (1 - 10%) of the GPU minus 1 GiB of CUDA context.
    """

    model: str
    kind: str
    weight_dtype: str
    compute_dtype: str
    batch_size: int
    ranks: int
    fsdp: bool
    query_tokens: int
    label_tokens: int
    num_labels: int | None
    gradient_checkpointing: bool
    backbone_params: int
    lm_head_params_excluded: int
    trainable_params: int
    lora_params: int
    image_projection_params: int
    transform_params: int
    lpn_params: int
    free_vector_params: int
    weights: int
    lora_adapter: int
    image_projection: int
    lpn: int
    free_vectors: int
    centroids: int
    gradients: int
    optimizer_states: int
    autocast_copies: int
    activations_no_checkpointing: int
    activations_checkpointing: int
    loss_and_prototype_activations: int
    optimizer_step_transient: int
    peak_no_checkpointing: int
    peak_checkpointing: int
    peak: int
    gpu_bytes: int
    budget: int
    fits: bool
    suggested_checkpointing: bool
    suggested_batch_size: int | None
    suggested_accumulation: int | None
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (sizes in bytes)."""
        data = dataclasses.asdict(self)
        data["notes"] = list(self.notes)
        return data

    def table(self) -> Table:
        """A rich table for humans: each term in GiB, the peaks, the suggestion and the notes."""
        from rich.table import Table

        table = Table(
            title=f"estimated GPU memory: {self.model} ({self.kind}, {self.weight_dtype} weights, "
            f"{self.compute_dtype} compute), batch {self.batch_size} queries + {self.batch_size} labels"
            + (f", per rank of {self.ranks}{' (FSDP2-sharded)' if self.fsdp else ''}" if self.ranks > 1 else ""),
            caption="\n".join(self.notes),
            caption_justify="left",
        )
        table.add_column("term")
        table.add_column("GiB", justify="right")
        table.add_column("what", overflow="fold")
        ckpt = "on" if self.gradient_checkpointing else "off"
        rows = [
            ("weights", self.weights, f"{self.backbone_params:,} backbone parameters (+ heads)"),
            ("  LoRA adapter", self.lora_adapter, f"{self.lora_params:,} parameters, fp32"),
            ("  image projection", self.image_projection, f"{self.image_projection_params:,} parameters"),
            ("  PRIME LPN", self.lpn, f"{self.lpn_params:,} parameters"),
            ("  PRIME free vectors", self.free_vectors, f"{self.free_vector_params:,} parameters"),
            ("PRIME centroids", self.centroids, "L x d fp32 buffer" if self.num_labels else "pass --labels L"),
            ("gradients", self.gradients, f"{self.trainable_params:,} trainable parameters"),
            ("optimizer states", self.optimizer_states, "AdamW: 2 moments per trainable parameter"),
            ("autocast weight copies", self.autocast_copies, "16-bit copies of fp32 weights (linears, adapters)"),
            (
                "activations, no checkpointing",
                self.activations_no_checkpointing,
                f"tokens {self.query_tokens} per query, {self.label_tokens} per label",
            ),  # fmt: skip
            ("activations, checkpointing", self.activations_checkpointing, "layer inputs + one layer recomputed"),
            ("loss + LPN activations", self.loss_and_prototype_activations, "B x B scores, 3-token LPN"),
            ("peak, no checkpointing", self.peak_no_checkpointing, ""),
            ("peak, checkpointing", self.peak_checkpointing, ""),
            (f"peak as configured (checkpointing {ckpt})", self.peak, ""),
            ("budget", self.budget, f"{self.gpu_bytes / GIB:g} GiB GPU - 10% - 1 GiB context"),
        ]
        for name, size, what in rows:
            table.add_row(name, f"{size / GIB:,.2f}", what)
        return table


def estimate_memory(
    config: RunConfig,
    *,
    batch_size: int | None = None,
    gpu_gib: float = 80.0,
    num_labels: int | None = None,
    prompt_tokens: int | None = None,
    ranks: int = 1,
    hf_config: Any = None,
) -> MemoryEstimate:
    """Estimate the peak GPU memory of training ``config`` and suggest how to fit ``gpu_gib``.

    Args:
        config: the run configuration (backbone, LoRA, precision, images, prototypes, lengths).
        batch_size: queries per micro-batch (each brings one label); None = ``train.batch_size``.
        gpu_gib: GPU memory in GiB (80 = A100/H100 80 GB).
        num_labels: L, the dataset's label count: adds the PRIME centroids (L x d) and caps the free
            vectors at L/2 as the trainer does; None = centroids not counted.
        prompt_tokens: tokens of the decoder prompt's literal segments per sequence; None = counted roughly
            (one token per word or punctuation mark).
        ranks: processes of a torchrun launch (one per GPU): the estimate is then per rank.
        hf_config: the backbone's Hugging Face config when already read (``BackboneSpec.config``).

    Returns:
        The estimate, with a suggested checkpointing setting, micro-batch and accumulation steps.

    Raises:
        ConfigError: unknown model (offline), or a batch size below 2.
    """
    from vixml.config import PROMPT_PLACEHOLDERS

    mc, pc, ic = config.model, config.prototypes, config.images
    batch = batch_size if batch_size is not None else config.train.batch_size
    if batch < 2:
        raise ConfigError(f"batch_size must be >= 2 (in-batch negatives), got {batch}")
    lora = mc.lora
    shape = backbone_shape(mc.name_or_path, kind=mc.kind, config=hf_config, lora=lora)
    full_ft = lora is None
    weight_dtype = mc.dtype if mc.dtype != "auto" else ("bf16" if shape.decoder else "fp32")
    n = 4 if weight_dtype == "fp32" else 2
    # auto on a GPU is bf16 (fp16 on GPUs without bf16): 2-byte activations either way (vixml.devices)
    precision = "bf16" if config.train.precision == "auto" else config.train.precision
    e = 2 if precision != "fp32" else n
    compute_dtype = precision if precision != "fp32" else weight_dtype
    h, d = shape.hidden_size, mc.transform or shape.hidden_size

    lengths = []
    for text_len, side in ((config.data.max_length, "query"), (config.data.label_length(), "label")):
        images = ic.num_images if ic is not None and ic.sides in ("both", side) else 0
        if not shape.decoder:
            lengths.append(text_len + images)
            continue
        segments = mc.prompt_segments(with_images=images > 0)
        literal = sum(len(re.findall(r"\w+|[^\w\s]", s)) for s in segments if s not in PROMPT_PLACEHOLDERS)
        literal = literal if prompt_tokens is None else prompt_tokens
        lengths.append(literal + text_len + (images if "{images}" in segments else 0) + ("{eos}" in segments))
    sq, sl = lengths

    heads = head_sizes(config, num_labels, hidden=h, dim=d)
    proj_params, transform_params, lpn_params = heads.projection, heads.transform, heads.lpn
    free, centroids = heads.free_vectors // d, heads.label_buffers
    head_params = proj_params + transform_params + lpn_params + free * d
    trainable_backbone = shape.parameters if full_ft else shape.lora_parameters
    ranks = max(1, ranks)
    fsdp = ranks > 1 and shape.decoder and config.train.fsdp is not False and precision != "fp16"
    shard = ranks if fsdp else 1  # the backbone's weights, adapters and their optimiser state are sharded
    # weights gathered for the FSDP unit in flight: two blocks (current, prefetched) or the token embeddings
    gathered = max(2 * shape.linear_parameters // shape.num_layers, shape.parameters - shape.linear_parameters)
    train_bytes = (n if full_ft else 4) * trainable_backbone // shard + 4 * head_params
    weights = (shape.parameters * n + 4 * shape.lora_parameters) // shard + 4 * head_params
    weights += gathered * n if fsdp else 0
    static = weights + centroids + 3 * train_bytes  # + gradients + two AdamW moments
    copies = ((2 * shape.linear_parameters if n == 4 else 0) + 2 * shape.lora_parameters if e == 2 else 0) // shard
    eager = mc.attn_implementation == "eager"
    per_layer = [
        layer_activation_bytes(shape, e=e, n=n, full_ft=full_ft, lora_r=lora.r if lora else 0, seq_len=s, eager=eager)
        for s in (sq, sl)
    ]
    edge = (4 + n) * h + 40  # embeddings/assembled inputs, final norm, pooling

    # Backward working set per token of the layer in flight: the gradients of the MLP's intermediate tensors
    # (3 of size I when gated, 2 otherwise) and two of the residual stream.
    grad_work = e * (3 if shape.gated_mlp else 2) * shape.intermediate_size + 2 * n * h

    def activations(b: int, checkpointing: bool) -> int:
        b = -(-b // ranks)  # this rank's share of the batch
        tokens = b * (sq + sl)
        layer = [b * s * a for s, a in zip((sq, sl), per_layer, strict=True)]
        work = b * max(sq, sl) * grad_work
        if checkpointing:  # layer inputs kept; one layer (of the longer pass) recomputed at a time
            return n * h * shape.num_layers * tokens + edge * tokens + max(layer) + work
        return shape.num_layers * sum(layer) + edge * tokens + work

    def head_activations(b: int) -> int:
        mats = 6 if pc is not None else 3  # B x B fp32 score matrices (and their gradients)
        lpn = 3 * b * 4 * (12 * d + 3 * pc.lpn_ffn) if pc is not None else 0
        return 2 * mats * 4 * b * b + lpn + 8 * b * d * 4

    def peak(b: int, checkpointing: bool) -> int:
        return static + max(activations(b, checkpointing) + copies + head_activations(b), train_bytes)

    gpu = int(gpu_gib * GIB)
    budget = int(gpu * (1 - HEADROOM)) - CONTEXT_BYTES
    ckpt = mc.gradient_checkpointing
    accum = config.train.grad_accumulation
    target, notes = batch * accum, []
    micro, steps, suggest_ckpt = None, None, ckpt
    if peak(batch, ckpt) <= budget:
        micro, steps = batch, accum
        if ckpt and peak(batch, False) <= budget:
            notes.append("Fits without gradient checkpointing too: model.gradient_checkpointing=false is faster.")
    elif not ckpt and peak(batch, True) <= budget:
        micro, steps, suggest_ckpt = batch, accum, True
        notes.append("Switch gradient checkpointing on (model.gradient_checkpointing=true): the batch and its "
                     "in-batch negatives stay as they are, for about 30% more compute.")  # fmt: skip
    else:
        suggest_ckpt = True
        lo, hi = 1, target  # largest micro-batch that fits, by bisection (the peak grows with the batch)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if peak(mid, True) <= budget else (lo, mid - 1)
        if lo >= 2:
            steps = math.ceil(target / lo)
            steps = next((k for k in range(steps, min(2 * steps, target // 2) + 1) if target % k == 0), steps)
            micro = math.ceil(target / steps)
            notes.append(
                f"Gradient checkpointing first{'' if ckpt else ' (model.gradient_checkpointing=true)'}, then "
                f"accumulation: train.batch_size={micro} train.grad_accumulation={steps} ({micro * steps} queries "
                f"per step). In-batch negatives stay per micro-batch under accumulation: each query meets {micro} "
                f"candidates, not {target}, so the hard negatives (NGAME clusters) change and results may differ."
            )
        else:
            notes.append(
                f"Does not fit even at 2 queries: weights, gradients and optimizer states take "
                f"{static / GIB:.1f} GiB of the {budget / GIB:.1f} GiB budget. Use LoRA (model.lora), 16-bit "
                f"weights, fewer PRIME free vectors, or a smaller backbone."
            )
    if shape.lm_head_parameters:
        notes.append(f"The checkpoint's untied LM head ({shape.lm_head_parameters:,} parameters) is not loaded.")
    if pc is not None and not num_labels:
        notes.append("PRIME centroids (L x d fp32) are not counted: pass the label count (--labels L).")
    if ic is not None and ic.embedding_dim is None:
        notes.append(f"Image embeddings assumed {DEFAULT_VISION_DIM}-d (SigLIP2-so400m); set images.embedding_dim.")
    no_ckpt, with_ckpt = peak(batch, False), peak(batch, True)
    logger.debug("memory estimate of %s: %s; per-layer bytes/token %s", mc.name_or_path, shape, per_layer)
    return MemoryEstimate(
        model=mc.name_or_path,
        kind="decoder" if shape.decoder else "encoder",
        weight_dtype=weight_dtype,
        compute_dtype=compute_dtype,
        batch_size=batch,
        ranks=ranks,
        fsdp=fsdp,
        query_tokens=sq,
        label_tokens=sl,
        num_labels=num_labels,
        gradient_checkpointing=ckpt,
        backbone_params=shape.parameters,
        lm_head_params_excluded=shape.lm_head_parameters,
        trainable_params=trainable_backbone + head_params,
        lora_params=shape.lora_parameters,
        image_projection_params=proj_params,
        transform_params=transform_params,
        lpn_params=lpn_params,
        free_vector_params=free * d,
        weights=weights,
        lora_adapter=4 * shape.lora_parameters // shard,
        image_projection=4 * proj_params,
        lpn=4 * lpn_params,
        free_vectors=4 * free * d,
        centroids=centroids,
        gradients=train_bytes,
        optimizer_states=2 * train_bytes,
        autocast_copies=copies,
        activations_no_checkpointing=activations(batch, False),
        activations_checkpointing=activations(batch, True),
        loss_and_prototype_activations=head_activations(batch),
        optimizer_step_transient=train_bytes,
        peak_no_checkpointing=no_ckpt,
        peak_checkpointing=with_ckpt,
        peak=with_ckpt if ckpt else no_ckpt,
        gpu_bytes=gpu,
        budget=budget,
        fits=(with_ckpt if ckpt else no_ckpt) <= budget,
        suggested_checkpointing=suggest_ckpt,
        suggested_batch_size=micro,
        suggested_accumulation=steps,
        notes=tuple(notes),
    )
