"""The sections of a vixml run's configuration, one dataclass per concern (docs/method.md settings as defaults).

Defaults follow the reference code (DiegoOrtego/vixml and its run scripts): an empty config trains the
paper's encoder recipe. Every deliberate deviation from the reference is a named switch whose default is
the reference's behaviour (README, "Reproducing the paper").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from vixml.config.fields import (
    PROMPT_PLACEHOLDERS,
    FreeVectorInit,
    HingeTie,
    ImagelessCaption,
    ImagePositions,
    ImageSides,
    Kind,
    LossName,
    LpnInputs,
    PoolingMode,
    PositiveSampling,
    Precision,
    UnseenLabels,
    _f,
    _Section,
)

__all__ = [
    "ModelConfig",
    "LoraConfig",
    "DataConfig",
    "ImagesConfig",
    "PrototypeConfig",
    "MiningConfig",
    "LossWeights",
    "LossConfig",
    "TrainConfig",
    "AugmentConfig",
    "EvalConfig",
    "SparseConfig",
    "RunConfig",
    "PAPER_EPOCHS",
    "scaled_epoch",
]

PAPER_EPOCHS = 150
"""Run length of the reference encoder schedule (cl_start 10, cl_update 5, doubling at 20..120, eval 10,
checkpoint 5 are given for 150 epochs); ``auto`` schedule values keep these proportions of ``train.epochs``."""


def scaled_epoch(paper_value: int, epochs: int, minimum: int = 1) -> int:
    """``paper_value`` (an epoch count of the 150-epoch reference schedule) scaled to a run of ``epochs``."""
    return max(minimum, math.floor(paper_value * epochs / PAPER_EPOCHS + 0.5))


@dataclass(frozen=True)
class LoraConfig(_Section):
    """Low-rank adaptation of the backbone (docs/method.md 2: rsLoRA r=256 alpha=256 dropout 0 for decoders)."""

    _key = "model.lora"
    r: int = _f(256, "Rank of the low-rank update matrices.", ge=1)
    alpha: float = _f(256.0, "Scaling numerator: the update is scaled by alpha/r (alpha/sqrt(r) with rslora).", gt=0)
    rslora: bool = _f(True, "Rank-stabilised scaling alpha/sqrt(r) (rsLoRA) instead of alpha/r.")
    dropout: float = _f(0.0, "Dropout on the LoRA input during training.", ge=0, lt=1)
    target_modules: tuple[str, ...] | None = _f(
        None,
        "Module names to adapt; null = the architecture's defaults keyed by model_type "
        "(attention q,k,v,o and MLP gate,up,down projections).",
    )
    quantize: Literal["none", "4bit"] = _f(
        "none", "QLoRA: load the frozen base in 4-bit NF4 (CUDA with the 'qlora' extra only)."
    )


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The shared query/label encoder (docs/method.md 2): an HF encoder or decoder, pooled into one vector."""

    _key = "model"
    name_or_path: str = _f("sentence-transformers/all-MiniLM-L6-v2", "Hugging Face model name or local folder.")
    kind: Kind = _f(
        "auto", "Backbone family; auto = read from the model's HF config (decoders get the prompt, causal attention)."
    )
    pooling: PoolingMode = _f(
        "mean", "Token pooling: mean over the attention mask (image tokens included), first token, or last token."
    )
    normalize: bool = _f(True, "L2-normalise embeddings so that inner product = cosine similarity.")
    transform: int | None = _f(None, "Output size of an optional linear layer after pooling; null = none.", ge=1)
    lora: LoraConfig | None = _f(None, "LoRA adapters (section); null = full fine-tuning of every weight.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    liger: bool = _f(False, "Fused Liger kernels for decoders (CUDA with the 'liger' extra; skipped on CPU).")
    attn_implementation: str | None = _f(
        None, "HF attention kernel ('sdpa', 'eager', 'flash_attention_2'); null = the library's default."
    )
    dtype: Precision = _f(
        "auto",
        "Dtype of the loaded weights (autocast then computes in train.precision); auto = bf16 for decoders on "
        "a GPU with native bf16, fp32 otherwise.",
    )
    image_positions: ImagePositions = _f(
        "fixed",
        "Encoders with images: position ids of the text. fixed = always after the N image slots, missing "
        "images or not (reference: [CLS] at position N); mask = counted over the real tokens only.",
    )
    imageless_caption: ImagelessCaption = _f(
        "keep",
        "Decoder items whose images are ALL missing (in a model with images): keep the caption before {images} "
        "with masked image slots (reference), or drop it so that the item reads as a text-only one.",
    )
    prompt: tuple[str, ...] = _f(
        ("This product text", "{text}", "and its image", "{images}", "{eos}"),
        "Decoder input as segments: literal text (embedded with the model's token embeddings) or a placeholder: "
        "{text} = the item's tokens, {images} = its projected image tokens, {eos} = the tokenizer's EOS token. "
        "Without images, {images} and the literal segment just before it are dropped. Encoders ignore it.",
    )

    def _check(self) -> list[tuple[str, str]]:
        problems = []
        for seg in self.prompt:
            if seg.startswith("{") and seg.endswith("}") and seg not in PROMPT_PLACEHOLDERS:
                problems.append(("prompt", f"unknown placeholder {seg!r}; valid: {', '.join(PROMPT_PLACEHOLDERS)}"))
        if self.prompt.count("{text}") != 1:
            problems.append(("prompt", f"must contain '{{text}}' exactly once, got {list(self.prompt)}"))
        if self.prompt.count("{images}") > 1:
            problems.append(("prompt", f"must contain '{{images}}' at most once, got {list(self.prompt)}"))
        return problems

    def prompt_segments(self, with_images: bool) -> tuple[str, ...]:
        """The prompt's segments for items with or without images (the rule stated in ``prompt``'s help)."""
        if with_images or "{images}" not in self.prompt:
            return self.prompt
        i = self.prompt.index("{images}")
        start = i - 1 if i > 0 and self.prompt[i - 1] not in PROMPT_PLACEHOLDERS else i
        return self.prompt[:start] + self.prompt[i + 1 :]


@dataclass(frozen=True)
class DataConfig(_Section):
    """How dataset texts become token ids."""

    _key = "data"
    max_length: int = _f(32, "Maximum tokens per query text (paper: 32 for titles, 128 with descriptions).", ge=1)
    label_max_length: int | None = _f(None, "Maximum tokens per label text; null = max_length.", ge=1)
    cache_dir: str | None = _f(None, "Folder of the tokenisation cache; null = a cache folder beside the dataset.")

    def label_length(self) -> int:
        """The effective maximum token count of a label text."""
        return self.max_length if self.label_max_length is None else self.label_max_length


@dataclass(frozen=True)
class ImagesConfig(_Section):
    """Vision enhancement by early fusion of precomputed image embeddings (docs/method.md 3)."""

    _key = "images"
    num_images: int = _f(3, "Images per item (the first N of its list); missing slots are masked out.", ge=1)
    embedding_model: str | None = _f(
        None,
        "Model tag of the embedding banks to use ({split}_embs_imgs_<N>_<D>_<tag>.npy, found by the released "
        "file names); null = the only one present in the dataset.",
    )
    embedding_dim: int | None = _f(None, "Expected size of one image embedding (checked); null = the bank's.", ge=1)
    vision_model: str = _f(
        "google/siglip2-so400m-patch14-384",
        "The vision model that made the embeddings (name or folder): run on image files of new queries at "
        "prediction time, so that they are embedded as the banks were.",
    )
    projection_lr: float = _f(5e-4, "Learning rate of the Linear(embedding_dim -> hidden) image projection.", gt=0)
    placement: Literal["auto", "before_text", "prompt"] = _f(
        "auto",
        "Where image tokens go: before the text tokens, or at {images} in the decoder prompt; "
        "auto = encoders before the text, decoders in the prompt (images first hurt decoders: attention sink).",
    )
    dropout: float = _f(
        0.0,
        "Probability of dropping all images of an item during training (robustness to missing images).",
        ge=0,
        lt=1,
    )
    sides: ImageSides = _f("both", "Which items carry images: queries, labels, or both.")

    def resolve_placement(self, kind: Literal["encoder", "decoder"]) -> Literal["before_text", "prompt"]:
        """The placement for a backbone of ``kind`` (resolves ``auto``)."""
        if self.placement != "auto":
            return self.placement
        return "before_text" if kind == "encoder" else "prompt"


@dataclass(frozen=True)
class PrototypeConfig(_Section):
    """PRIME label prototypes: LPN over (text embedding, free vector, query centroid) (docs/method.md 4)."""

    _key = "prototypes"
    num_free_vectors: int = _f(
        65536, "Learnable free vectors; labels share them by balanced k-means clusters; 0 = none.", ge=0
    )
    free_init: FreeVectorInit = _f(
        "xavier",
        "Initial free vectors: Xavier-uniform noise (reference encoders), or the mean label embedding of their "
        "cluster (reference decoders: --init_fv_w_embeddings).",
    )
    lpn_inputs: LpnInputs = _f(
        "raw",
        "What the prototype network reads: raw = the un-normalised pooled label embedding and the plain mean of "
        "its training queries' embeddings (reference); normalized = both L2-normalised (three equal-norm tokens).",
    )
    unseen_labels: UnseenLabels = _f(
        "prototype",
        "Labels without any training query: a prototype from a zero centroid (reference), or their "
        "normalised text embedding instead.",
    )
    lpn_heads: int = _f(8, "Attention heads of the label prototype network (one Transformer encoder layer).", ge=1)
    lpn_ffn: int = _f(1024, "Feed-forward width of the label prototype network.", ge=1)
    lpn_dropout: float = _f(0.1, "Dropout inside the label prototype network.", ge=0, lt=1)
    lr: float = _f(5e-4, "Learning rate of the prototype network and the free vectors.", gt=0)
    centroid_refresh_every: int = _f(
        1, "Recompute label centroids (mean training-query embedding) every N epochs.", ge=1
    )
    reg_margin: float = _f(0.1, "Margin of the prototype regulariser L_r (its weight is loss.weights.r).", ge=0)
    reg_num_negatives: int = _f(10, "Hard negatives per query in the prototype regulariser L_r.", ge=1)

    def free_vectors_for(self, num_labels: int) -> int:
        """Free vectors for ``num_labels`` labels: the paper's 65,536 for 131K labels is about two labels per
        vector, so small label sets keep that ratio (``min(num_free_vectors, L // 2)``)."""
        return min(self.num_free_vectors, max(1, num_labels // 2))


@dataclass(frozen=True)
class MiningConfig(_Section):
    """NGAME negative mining: batches made of clusters of similar queries (docs/method.md 4)."""

    _key = "mining"
    cluster_size: int = _f(16, "Queries per cluster when mining starts.", ge=1)
    double_at: tuple[int, ...] | Literal["auto"] = _f(
        "auto",
        "Epochs at which the cluster size doubles (curriculum), ascending; auto = the reference's 20,40,...,120 "
        "of 150 epochs, scaled to train.epochs.",
    )
    start_epoch: int | Literal["auto"] = _f(
        "auto",
        "Epoch (0-based) at whose end the query bank is first clustered: batches are random up to and including "
        "it, clustered from the next one (start_epoch + 1) on, as in the reference; auto = the reference's 10 of "
        "150 epochs, scaled to train.epochs (at least 1, and early enough that a short run mines).",
        ge=0,
    )
    update_every: int | Literal["auto"] = _f(
        "auto",
        "Re-cluster the query-embedding bank every N epochs from start_epoch; auto = the reference's 5 of 150 "
        "epochs, scaled to train.epochs (at least 1).",
        ge=1,
    )

    def _check(self) -> list[tuple[str, str]]:
        d = self.double_at
        if d != "auto" and (any(e < 0 for e in d) or list(d) != sorted(set(d))):
            return [("double_at", f"must be distinct non-negative epochs in ascending order, got {d}")]
        return []

    def resolved(self, epochs: int) -> MiningConfig:
        """This section with every ``auto`` replaced by the reference schedule scaled to ``epochs``."""
        start = self.start_epoch
        if start == "auto":
            start = min(scaled_epoch(10, epochs), max(epochs - 2, 0))
        update = scaled_epoch(5, epochs) if self.update_every == "auto" else self.update_every
        double = self.double_at
        if double == "auto":
            double = tuple(sorted({e for k in range(1, 7) if (e := scaled_epoch(20 * k, epochs, minimum=0)) < epochs}))
        return MiningConfig(self.cluster_size, double, start, update)

    # When NGAME re-clusters, and with what size (docs/method.md 4 curriculum), asked of a resolved section.
    # Epochs count from 0, as the reference loop ``for epoch in range(epochs)``. Both questions are asked at the
    # END of epoch ``e``, once its query bank is full: first the size may double (``e in double_at``), then the
    # bank may be re-clustered; the clusters shape the batches of epochs ``e + 1`` onwards. With the reference's
    # 150 epochs, epochs 0-10 use random batches, epoch 11 is the first clustered one, clusters are rebuilt
    # after epochs 10, 15, 20, ... and their size is 16 up to the clustering after epoch 15, 32 from the one
    # after epoch 20, ... 1024 from the one after epoch 120.
    def cluster_size_at(self, epoch: int) -> int:
        """Cluster size for a clustering built at the end of (0-based) ``epoch``."""
        return self.cluster_size * 2 ** sum(1 for e in self._concrete().double_at if e <= epoch)

    def should_recluster(self, epoch: int) -> bool:
        """Whether to re-cluster the query bank at the end of (0-based) ``epoch``."""
        m = self._concrete()
        return epoch >= m.start_epoch and (epoch - m.start_epoch) % m.update_every == 0

    def uses_clusters(self, epoch: int) -> bool:
        """Whether the batches of (0-based) ``epoch`` come from clusters (built at the end of an earlier one)."""
        return epoch > self._concrete().start_epoch

    def _concrete(self) -> MiningConfig:
        if "auto" in (self.double_at, self.start_epoch, self.update_every):
            raise ValueError("the mining schedule has 'auto' values: ask mining.resolved(train.epochs)")
        return self


@dataclass(frozen=True)
class LossWeights(_Section):
    """Weights of the loss terms: L = u*L_u + uv*L_uv + i*L_i + r*L_r (docs/method.md 4)."""

    _key = "loss.weights"
    u: float = _f(1.0, "Weight of L_u: query vs label text embedding.", ge=0)
    uv: float = _f(1.0, "Weight of L_uv: query vs label prototype (with prototypes only).", ge=0)
    i: float = _f(
        1.0,
        "Weight of L_i: label text embedding vs queries (transposed targets); without prototypes only with "
        "loss.symmetric.",
        ge=0,
    )
    r: float = _f(0.1, "Weight of L_r, the prototype regulariser (with prototypes only).", ge=0)


@dataclass(frozen=True)
class LossConfig(_Section):
    """The in-batch contrastive loss (docs/method.md 4)."""

    _key = "loss"
    name: LossName = _f("triplet", "Triplet with online hard negatives, or InfoNCE.")
    num_negatives: int = _f(10, "Hardest in-batch negatives per query (triplet).", ge=1)
    margin_min: float = _f(0.1, "Lower clamp of the dynamic margin.", ge=0)
    margin_max: float = _f(
        0.3, "Upper clamp of the dynamic margin; the fixed margin when dynamic_margin is off.", ge=0
    )
    dynamic_margin: bool = _f(True, "Margin = clamp(|s_p - s_n|, margin_min, margin_max), without gradient.")
    aggressive: bool = _f(
        True,
        "Per query, the softmax(s_n / temperature)-weighted mean of its violating negatives' hinge terms "
        "(reference scripts: --agressive-loss); false = their plain sum.",
    )
    temperature: float = _f(0.1, "Temperature of the aggressive negative weighting.", gt=0)
    hinge_tie: HingeTie = _f(
        "split",
        "Gradient of max(0, x) at exactly x = 0 (frequent with the dynamic margin), in every hinge: the triplet "
        "loss's and PRIME's L_r (under either loss.name): split = 0.5 as torch.max in the reference, zero = none "
        "(relu). Loss values are the same.",
    )
    symmetric: bool = _f(
        False,
        "Plain dual encoder (no prototypes): also train L_i, labels ranking the batch's queries (the reference "
        "trains L_u alone; PRIME always has L_i).",
    )
    infonce_temperature: float = _f(0.05, "Temperature of the InfoNCE softmax.", gt=0)
    weights: LossWeights = _f(LossWeights, "Weights of the loss terms (section).")

    def _check(self) -> list[tuple[str, str]]:
        if self.margin_min > self.margin_max:
            return [("margin_min", f"must be <= margin_max ({self.margin_max}), got {self.margin_min}")]
        return []


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimisation and the training loop (docs/method.md 4)."""

    _key = "train"
    epochs: int = _f(300, "Passes over the training queries (paper encoders: 300 text-only, 150 with images).", ge=0)
    max_steps: int | None = _f(
        None,
        "Stop after this many optimiser steps, inside an epoch if need be (the learning rate decays to it); "
        "null = train.epochs whole epochs. The demo sets it to fit its time budget.",
        ge=1,
    )
    batch_size: int = _f(2048, "Queries per batch; the batch's positives are the candidate labels.", ge=2)
    lr: float = _f(2e-4, "Peak learning rate of the backbone (paper: MiniLM 5e-4, DistilBERT 2e-4, LLMs 5e-5).", gt=0)
    weight_decay: float = _f(0.01, "AdamW weight decay (never on biases and LayerNorm weights).", ge=0)
    adam_eps: float = _f(1e-6, "AdamW epsilon.", gt=0)
    warmup_steps: int = _f(100, "Steps of linear learning-rate warm-up.", ge=0)
    schedule: Literal["linear", "constant", "cosine"] = _f("linear", "Learning-rate decay after the warm-up.")
    precision: Precision = _f(
        "auto",
        "Autocast precision. auto = bf16 where the device runs it natively (CUDA GPUs with bf16, CPUs with "
        "AVX512_BF16 or AMX), else fp16 on CUDA and fp32 on CPU; forced bf16 on other CPUs is 8-9x slower "
        "than fp32 (paper: fp16 for encoders, bf16 for decoders).",
    )
    grad_clip: float | Literal["auto"] | None = _f(
        "auto",
        "Clip the gradient norm to this value; null = no clipping; auto = 1.0 for decoders, none for encoders "
        "(reference).",
        gt=0,
    )
    seed: int = _f(0, "Seed of every random number generator (numpy takes at most 2**32 - 1).", ge=0, le=2**32 - 1)
    sampling: PositiveSampling = _f(
        "inverse_propensity", "Which positive of a query enters its batch: uniform, or by inverse propensity (tail)."
    )
    propensity_A: float = _f(0.6, "Propensity parameter A of the positive sampling.", gt=0)
    propensity_B: float = _f(2.6, "Propensity parameter B of the positive sampling.", ge=0)
    eval_every: int | Literal["auto"] = _f(
        "auto",
        "Evaluate on the test split every N epochs; 0 = only after the last epoch; auto = every 10 of 150 epochs, "
        "scaled to train.epochs (at least every epoch).",
        ge=0,
    )
    checkpoint_every: int | Literal["auto"] = _f(
        "auto",
        "Write a resumable checkpoint every N epochs; 0 = only at the end; auto = every 5 of 150 epochs, scaled "
        "to train.epochs (at least every epoch).",
        ge=0,
    )
    checkpoint_minutes: float | None = _f(
        5.0, "Also write a checkpoint inside an epoch after this many minutes of training; null = never.", gt=0
    )
    checkpoint_steps: int | None = _f(
        None, "Also write a checkpoint inside an epoch every N optimiser steps; null = never.", ge=1
    )
    log_every: int = _f(50, "Log the running loss every N optimiser steps.", ge=1)
    grad_accumulation: int = _f(1, "Micro-batches per optimiser step (in-batch negatives stay per micro-batch).", ge=1)
    device: str = _f("auto", "'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    fsdp: bool | Literal["auto"] = _f(
        "auto",
        "On several ranks (torchrun): shard a decoder's weights over the ranks with FSDP2 (fully_shard of each "
        "block) instead of a full replica per rank; auto = decoders yes (not with fp16), encoders no; "
        "false = replicate every model. One process: no effect.",
    )

    def _check(self) -> list[tuple[str, str]]:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            return [("device", f"{self.device!r} is not valid; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")]
        return []

    def eval_interval(self) -> int:
        """``eval_every`` with ``auto`` resolved for this run's length."""
        return scaled_epoch(10, self.epochs) if self.eval_every == "auto" else self.eval_every

    def checkpoint_interval(self) -> int:
        """``checkpoint_every`` with ``auto`` resolved for this run's length."""
        return scaled_epoch(5, self.epochs) if self.checkpoint_every == "auto" else self.checkpoint_every

    def clip_norm(self, decoder: bool) -> float | None:
        """The gradient-norm clip of a run whose backbone is a decoder or not (``auto`` resolved)."""
        if self.grad_clip == "auto":
            return 1.0 if decoder else None
        return self.grad_clip


@dataclass(frozen=True)
class AugmentConfig(_Section):
    """Retrieval-augmented scoring ("+R", docs/method.md 5): training queries vote for their labels."""

    _key = "eval.augment"
    num_labels: int = _f(100, "Labels retrieved per query.", ge=1)
    num_queries: int = _f(100, "Training queries retrieved per query.", ge=1)
    temperature: float = _f(0.05, "Softmax temperature over all retrieved scores of a query.", gt=0)
    label_weight: float = _f(0.9, "Weight of label hits; training-query hits weigh 1 - label_weight.", ge=0, le=1)


@dataclass(frozen=True)
class EvalConfig(_Section):
    """Prediction depth and the metrics (docs/method.md 5-6)."""

    _key = "eval"
    A: float | Literal["auto"] = _f(
        "auto",
        "Propensity parameter A of PSP/PSnDCG; auto = the dataset family's (dataset.json or folder name: Amazon "
        "0.6, Wikipedia 0.5), else 0.55.",
        gt=0,
    )
    B: float | Literal["auto"] = _f(
        "auto",
        "Propensity parameter B of PSP/PSnDCG; auto = the dataset family's (Amazon 2.6, Wikipedia 0.4), else 1.5.",
        ge=0,
    )
    k: int = _f(5, "Metrics are reported at 1..k (and R@topk).", ge=1)
    topk: int = _f(100, "Labels kept per query by the search.", ge=1)
    use_filter: bool = _f(True, "Remove the pairs of filter_labels_test.txt (when present) before scoring.")
    encode_batch_size: int = _f(512, "Texts per batch when embedding queries and labels.", ge=1)
    augment: AugmentConfig | None = _f(
        None,
        "Retrieval-augmented scoring (+R: predict/serve --augment) settings (section); null = the paper's "
        "defaults at predict time. In a hybrid run (sparse) it also makes +R a third fused source: its weight "
        "is tuned and dense + R and fused + R measured at the end of training.",
    )

    def _check(self) -> list[tuple[str, str]]:
        return [("topk", f"must be >= k ({self.k}), got {self.topk}")] if self.topk < self.k else []


@dataclass(frozen=True)
class SparseConfig(_Section):
    """The sparse companion fused with the dual encoder (README, "Sparse companion"): not in the paper."""

    _key = "sparse"
    ngrams: int = _f(2, "Word n-grams of the TF-IDF features (1 = unigrams).", ge=1, le=3)
    min_df: int = _f(1, "Drop terms found in fewer training texts.", ge=1)
    max_features: int | None = _f(1_000_000, "Keep at most this many terms (the most frequent); null = all.", ge=1)
    label_texts: bool = _f(True, "Each label's text is one more training row of that label (labels known by text).")
    trees: int = _f(3, "Trees of the label forest (omikuji); each adds its training time and memory.", ge=1)
    cluster_k: int = _f(
        16,
        "Children per tree node (omikuji's cluster_k): 16 with max_depth 4 (shallow, wide trees, as Bonsai) "
        "trained 3.3x faster with a 36% smaller forest at 2% of LF-AmazonTitles-1.3M and ranked as well or "
        "better than Parabel's binary trees (2, 20) on both real benchmark datasets.",
        ge=2,
    )
    max_depth: int = _f(4, "Tree levels at most (omikuji's max_depth); the last level's nodes hold the labels.", ge=1)
    weight_threshold: float = _f(
        0.1,
        "Classifier weights below this are dropped (omikuji's linear_weight_threshold): raise it (0.3) to shrink "
        "the forest on large label sets (measured: 3x smaller at no loss on synthetic data).",
        ge=0,
    )
    beam_size: int = _f(10, "Tree nodes kept per level when predicting.", ge=1)
    candidates: int = _f(100, "Labels each source proposes to the fusion, per query.", ge=1)
    holdout: float = _f(
        0.05,
        "Share of training queries held out of both models to tune the fusion weight (queries neither model "
        "saw); at most holdout_max.",
        ge=0,
        lt=0.5,
    )
    holdout_max: int = _f(2000, "At most this many held-out queries.", ge=0)
    dense_weight: float | Literal["auto"] = _f(
        "auto", "Weight of the dense source in the fusion (the sparse one weighs 1 - it); auto = tuned.", ge=0, le=1
    )
    normalization: Literal["zscore", "none"] = _f(
        "zscore",
        "Per-query normalisation of each source's candidate scores before they are combined: zscore (scale-free: "
        "the same weight holds for +R's probabilities) or none (the inner product and the forest's score).",
    )


@dataclass(frozen=True)
class RunConfig(_Section):
    """Everything a training run needs besides the data: written as YAML into every run folder."""

    model: ModelConfig = _f(ModelConfig, "The backbone (section).")
    data: DataConfig = _f(DataConfig, "Tokenisation (section).")
    images: ImagesConfig | None = _f(None, "Image early fusion (section); null = text-only.")
    prototypes: PrototypeConfig | None = _f(
        PrototypeConfig, "PRIME label prototypes (section); null = plain dual encoder."
    )
    mining: MiningConfig | None = _f(MiningConfig, "NGAME cluster batches (section); null = random batches.")
    loss: LossConfig = _f(LossConfig, "The loss (section).")
    train: TrainConfig = _f(TrainConfig, "Optimisation (section).")
    eval: EvalConfig = _f(EvalConfig, "Prediction and metrics (section).")
    sparse: SparseConfig | None = _f(
        None, "A TF-IDF label forest trained beside the dual encoder and fused with it (section); null = off."
    )

    def _check(self) -> list[tuple[str, str]]:
        problems = []
        if self.images is not None and self.model.kind != "auto":
            place = self.images.resolve_placement(self.model.kind)
            if place == "prompt" and self.model.kind == "encoder":
                problems.append(("images.placement", "'prompt' needs a decoder; encoders take 'before_text'"))
            elif place == "prompt" and "{images}" not in self.model.prompt:
                problems.append(("model.prompt", "must contain {images} when images are placed in the prompt"))
        return problems
