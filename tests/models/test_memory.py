"""The GPU memory estimator: exact parameter counts, the activation formula against autograd, the advice, the CLI."""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import transformers
import typer
from typer.testing import CliRunner

from vixml.cli.memory import memory
from vixml.config import RunConfig, apply_overrides, load_config
from vixml.errors import ConfigError
from vixml.planning import KNOWN_MODELS, backbone_shape, estimate_memory, layer_activation_bytes

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _tiny_config(model_type: str, layers: int = 2, dropout: float = 0.0, **extra) -> transformers.PretrainedConfig:
    """A tiny config of ``model_type`` (h=64, 4 heads, I=128), dropout off unless asked."""
    if model_type == "distilbert":
        kw = dict(dim=64, n_layers=layers, n_heads=4, hidden_dim=128, dropout=dropout, attention_dropout=dropout)
    elif model_type == "bert":
        kw = dict(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=128)
        kw |= dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    else:
        kw = dict(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2)
        kw |= dict(intermediate_size=128)
    return transformers.AutoConfig.for_model(model_type, vocab_size=500, attn_implementation="sdpa", **kw, **extra)


def _folder(tmp_path: Path, cfg: transformers.PretrainedConfig) -> str:
    folder = tmp_path / f"{cfg.model_type}-{len(list(tmp_path.iterdir()))}"
    cfg.save_pretrained(folder)
    return str(folder)


def _real_model(cfg: transformers.PretrainedConfig, dtype=torch.float32, lora_r: int = 0, targets=None):
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(cfg).to(dtype)
    if lora_r:
        import peft

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = peft.LoraConfig(r=lora_r, lora_alpha=lora_r, target_modules=targets or "all-linear")
            model = peft.get_peft_model(model, config)
    return model


# ------------------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize(
    ("model_type", "extra"),
    [("qwen2", {}), ("llama", {"tie_word_embeddings": False}), ("qwen3", {"head_dim": 32}), ("bert", {}),
     ("distilbert", {}), ("gemma3_text", {"head_dim": 16})],
)  # fmt: skip
def test_meta_parameter_count_equals_the_real_model(tmp_path, model_type, extra):
    cfg = _tiny_config(model_type, **extra)
    shape = backbone_shape(_folder(tmp_path, cfg))
    assert shape.parameters == sum(p.numel() for p in _real_model(cfg).parameters())
    assert shape.num_layers == 2 and shape.hidden_size == 64


# Sizes the model cards advertise (decoders: the causal-LM checkpoint, head included).
ADVERTISED = {
    "Qwen/Qwen2.5-7B-Instruct": 7.61e9,
    "Qwen/Qwen2.5-3B-Instruct": 3.09e9,
    "Qwen/Qwen2.5-0.5B-Instruct": 0.49e9,
    "meta-llama/Llama-3.2-3B-Instruct": 3.21e9,
    "Qwen/Qwen3-4B": 4.02e9,
    "sentence-transformers/msmarco-distilbert-base-v4": 66e6,
    "sentence-transformers/paraphrase-MiniLM-L3-v2": 17.4e6,
    "intfloat/e5-base-v2": 109e6,
    "sentence-transformers/all-MiniLM-L6-v2": 22.7e6,
}


@pytest.mark.parametrize("name", sorted(ADVERTISED))
def test_known_models_reproduce_their_advertised_sizes(name):
    shape = backbone_shape(name)
    assert shape.parameters + shape.lm_head_parameters == pytest.approx(ADVERTISED[name], rel=0.02)


def test_only_qwen_7b_has_an_untied_head_and_gemma_is_its_text_tower():
    assert backbone_shape("Qwen/Qwen2.5-7B-Instruct").lm_head_parameters == 152064 * 3584
    assert backbone_shape("Qwen/Qwen2.5-3B-Instruct").lm_head_parameters == 0
    gemma = backbone_shape("google/gemma-3-4b-it")  # 4.3B with its 0.4B SigLIP tower, which vixml does not use
    assert gemma.model_type == "gemma3_text" and 3.8e9 < gemma.parameters < 3.95e9
    assert gemma.norms_per_layer == 4 and gemma.head_norms


def test_unknown_hub_name_is_a_config_error_listing_the_known_names():
    with pytest.raises(ConfigError) as info:
        backbone_shape("some-org/unknown-model")
    message = str(info.value)
    assert "local folder" in message and all(name in message for name in KNOWN_MODELS)


@pytest.mark.parametrize(("model_type", "targets"), [("qwen2", None), ("llama", ("q_proj", "v_proj")), ("bert", None)])
def test_lora_count_equals_peft_trainable_parameters(tmp_path, model_type, targets):
    cfg = _tiny_config(model_type)
    shape = backbone_shape(_folder(tmp_path, cfg), lora_r=8, lora_targets=targets)
    default = LLAMA_TARGETS if model_type != "bert" else None  # BERT: every linear layer (PEFT's all-linear)
    model = _real_model(cfg, lora_r=8, targets=list(targets or default or []) or None)
    assert shape.lora_parameters == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


# ------------------------------------------------------------------------------------- activation formula
def _saved_bytes(model, batch: int, autocast_dtype, seq: int = 12) -> int:
    """Bytes of the distinct storages autograd saves in one forward (parameters excluded)."""
    torch.manual_seed(1)
    ids = torch.randint(0, 500, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[:, seq - 3 :] = 0
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    model.train()
    ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
        model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
    return sum(size for ptr, size in seen.items() if ptr not in params)


CASES = {  # name: (model_type, extra, weight dtype, autocast dtype, LoRA rank)
    "qwen2 fp32 full": ("qwen2", {}, torch.float32, None, 0),
    "qwen2 fp32 weights bf16 autocast": ("qwen2", {}, torch.float32, torch.bfloat16, 0),
    "qwen2 bf16 full": ("qwen2", {}, torch.bfloat16, torch.bfloat16, 0),
    "qwen2 bf16 lora": ("qwen2", {}, torch.bfloat16, torch.bfloat16, 8),
    "qwen2 fp32 lora": ("qwen2", {}, torch.float32, None, 8),
    "qwen3 bf16 lora": ("qwen3", {"head_dim": 16}, torch.bfloat16, torch.bfloat16, 8),
    "gemma3 bf16 lora": ("gemma3_text", {"head_dim": 16}, torch.bfloat16, torch.bfloat16, 8),
    "bert fp32 full": ("bert", {}, torch.float32, None, 0),
    "bert fp32 weights bf16 autocast": ("bert", {}, torch.float32, torch.bfloat16, 0),
    "distilbert fp32 weights bf16 autocast": ("distilbert", {}, torch.float32, torch.bfloat16, 0),
    "bert bf16 autocast lora": ("bert", {}, torch.float32, torch.bfloat16, 8),
}
FAST_CASES = {"qwen2 bf16 lora", "bert fp32 weights bf16 autocast", "qwen2 fp32 full"}  # the paper's two recipes


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=() if c in FAST_CASES else pytest.mark.slow) for c in sorted(CASES)]
)
def test_layer_formula_matches_what_autograd_saves(tmp_path, case):
    """Oracle: the per-token bytes one more layer adds to autograd's saved tensors (CPU, SDPA, dropout off).

    Differences between 3 and 2 layers isolate one layer; between 8 and 4 sequences isolate the per-token part
    from per-layer constants (autocast's weight copies, counted apart by the estimator). The formula matches to
    the byte with torch 2.13 / transformers 5.x; should an upgrade change what autograd saves, revisit
    ``layer_activation_bytes`` (the estimate stays roughly right meanwhile).
    """
    model_type, extra, dtype, autocast_dtype, r = CASES[case]
    targets = None if model_type in ("bert", "distilbert") else list(LLAMA_TARGETS)

    def layer(batch: int) -> int:
        sizes = [
            _saved_bytes(_real_model(_tiny_config(model_type, L, **extra), dtype, r, targets), batch, autocast_dtype)
            for L in (2, 3)
        ]
        return sizes[1] - sizes[0]

    measured = (layer(8) - layer(4)) / (4 * 12)
    shape = backbone_shape(_folder(tmp_path, _tiny_config(model_type, **extra)), lora_r=r or None)
    n = 4 if dtype == torch.float32 else 2
    e = 2 if autocast_dtype is not None else n
    estimate = layer_activation_bytes(shape, e=e, n=n, full_ft=r == 0, lora_r=r, seq_len=12)
    assert estimate == measured


def test_eager_attention_and_dropout_add_their_terms(tmp_path):
    shape = backbone_shape(_folder(tmp_path, _tiny_config("bert", dropout=0.1)))
    assert shape.dropout_sites == 2 and shape.attention_dropout == 0.1
    fused = layer_activation_bytes(shape, e=2, n=4, full_ft=True, lora_r=0, seq_len=10)
    eager = layer_activation_bytes(shape, e=2, n=4, full_ft=True, lora_r=0, seq_len=10, eager=True)
    assert eager - fused == (4 + 2) * 4 * 10 + (1 + 2) * 4 * 10  # softmax fp32 + probabilities; mask + dropped


# ------------------------------------------------------------------------------------------------ estimate
def _decoder_run(tmp_path, **sections) -> RunConfig:
    folder = _folder(tmp_path, _tiny_config("qwen2"))
    data = {"model": {"name_or_path": folder, "kind": "decoder", "lora": {"r": 4}, "dtype": "bf16"}}
    data["train"] = {"precision": "bf16", "batch_size": 64}
    for key, value in sections.items():
        data[key] = value
    return RunConfig.from_dict(data)


def test_heads_and_static_terms_by_hand(tmp_path):
    from vixml.models.fusion import ImageProjection
    from vixml.models.prototypes import LabelPrototypes

    cfg = _decoder_run(tmp_path, prototypes={"num_free_vectors": 16}, images={"num_images": 2, "embedding_dim": 8})
    est = estimate_memory(cfg, num_labels=10)
    shape = backbone_shape(cfg.model.name_or_path, lora_r=4)
    protos = LabelPrototypes(10, 64, 5)  # the trainer caps free vectors at L / 2
    assert est.lpn_params == sum(p.numel() for p in protos.lpn.parameters())
    assert est.free_vector_params == protos.free_vectors.numel() == 5 * 64
    assert est.image_projection_params == sum(p.numel() for p in ImageProjection(8, 64).parameters())
    heads = est.lpn_params + est.free_vector_params + est.image_projection_params
    assert est.trainable_params == shape.lora_parameters + heads
    assert est.weights == 2 * shape.parameters + 4 * (shape.lora_parameters + heads)  # bf16 base, fp32 rest
    assert est.gradients == 4 * est.trainable_params and est.optimizer_states == 2 * est.gradients
    assert est.centroids == 10 * (4 * 64 + 8 + 1)
    assert est.autocast_copies == 2 * shape.lora_parameters  # fp32 adapters copied to bf16
    # "This product text" {text} "and its image" {images} {eos}: 3 + 32 + 3 + 2 + 1 tokens per side
    assert (est.query_tokens, est.label_tokens) == (41, 41)


def test_per_rank_estimate_shards_the_decoder_and_splits_the_batch(tmp_path):
    """On 2 ranks with FSDP2 a rank holds half the base, adapters and their state, plus one unit gathered;
    it encodes half the batch, while the loss's scores cover the global batch; replicas keep whole weights."""
    cfg = _decoder_run(tmp_path, prototypes={"num_free_vectors": 16})
    shape = backbone_shape(cfg.model.name_or_path, lora_r=4)
    one, half = estimate_memory(cfg, batch_size=64, num_labels=10), estimate_memory(cfg, batch_size=32, num_labels=10)
    two = estimate_memory(cfg, batch_size=64, num_labels=10, ranks=2)
    replicas = estimate_memory(apply_overrides(cfg, ["train.fsdp=false"]), batch_size=64, num_labels=10, ranks=2)
    assert two.fsdp and not replicas.fsdp and not one.fsdp and two.ranks == 2
    heads = 4 * (two.lpn_params + two.free_vector_params)
    gathered = max(2 * shape.linear_parameters // shape.num_layers, shape.parameters - shape.linear_parameters)
    assert two.weights == (2 * shape.parameters + 4 * shape.lora_parameters) // 2 + heads + 2 * gathered
    assert two.gradients == 4 * shape.lora_parameters // 2 + heads
    assert replicas.weights == one.weights and replicas.gradients == one.gradients
    for est in (two, replicas):
        assert est.activations_no_checkpointing == half.activations_no_checkpointing
        assert est.activations_checkpointing == half.activations_checkpointing
        assert est.loss_and_prototype_activations == one.loss_and_prototype_activations
    assert two.peak < replicas.peak < one.peak


def test_sequence_lengths_follow_images_sides_and_kind():
    cfg = load_config(CONFIGS / "minilm-l3-images-lf-amazon-131k.yaml")
    est = estimate_memory(apply_overrides(cfg, ["images.sides=query", "data.label_max_length=16"]))
    assert (est.query_tokens, est.label_tokens) == (128 + 3, 16)
    est = estimate_memory(load_config(CONFIGS / "qwen2.5-7b-images-lf-amazontitles-131k.yaml"), prompt_tokens=10)
    assert est.query_tokens == 10 + 32 + 3 + 1


def test_activations_scale_linearly_and_checkpointing_lowers_them(tmp_path):
    cfg = _decoder_run(tmp_path)
    small, large = estimate_memory(cfg, batch_size=32), estimate_memory(cfg, batch_size=96)
    assert large.activations_no_checkpointing == 3 * small.activations_no_checkpointing
    assert large.activations_checkpointing == 3 * small.activations_checkpointing
    assert small.activations_checkpointing < small.activations_no_checkpointing
    big = estimate_memory(load_config(CONFIGS / "qwen2.5-7b-images-lf-amazontitles-131k.yaml"))
    assert big.activations_checkpointing * 10 < big.activations_no_checkpointing
    assert big.peak == big.peak_checkpointing < big.peak_no_checkpointing


def test_a_config_that_fits_is_left_alone():
    est = estimate_memory(load_config(CONFIGS / "minilm-l3-lf-amazontitles-131k.yaml"))
    assert est.fits and est.peak <= est.budget
    assert (est.suggested_batch_size, est.suggested_accumulation) == (2048, 1)


def test_checkpointing_is_the_first_lever():
    cfg = load_config(CONFIGS / "distilbert-images-lf-amazon-131k.yaml")
    assert not cfg.model.gradient_checkpointing
    probe = estimate_memory(cfg)
    gib = (probe.peak_checkpointing + 2**30) / 0.9 / 2**30 + 1  # a GPU that fits only with checkpointing
    assert probe.peak_no_checkpointing > (gib * 0.9 - 1) * 2**30
    est = estimate_memory(cfg, gpu_gib=gib)
    assert not est.fits and est.suggested_checkpointing
    assert (est.suggested_batch_size, est.suggested_accumulation) == (cfg.train.batch_size, 1)
    assert any("gradient checkpointing on" in note for note in est.notes)


@pytest.mark.parametrize("gpu_gib", [80.0, 40.0])
def test_suggested_accumulation_fits(gpu_gib):
    preset = load_config(CONFIGS / "qwen2.5-7b-images-lf-amazontitles-131k.yaml")  # App. A: batch 1024
    cfg = apply_overrides(preset, ["train.batch_size=2048"])
    est = estimate_memory(cfg, gpu_gib=gpu_gib, num_labels=131073)
    assert not est.fits
    micro, steps = est.suggested_batch_size, est.suggested_accumulation
    assert steps > 1 and micro * steps >= 2048 and micro * steps < 2048 + steps
    again = estimate_memory(cfg, batch_size=micro, gpu_gib=gpu_gib, num_labels=131073)
    assert again.fits and again.peak <= again.budget
    assert any("In-batch negatives stay per micro-batch" in note for note in est.notes)


def test_what_cannot_fit_says_so(tmp_path):
    cfg = apply_overrides(load_config(CONFIGS / "qwen2.5-7b-images-lf-amazontitles-131k.yaml"), ["model.lora=null"])
    est = estimate_memory(cfg, gpu_gib=24)
    assert not est.fits and est.suggested_batch_size is None and est.suggested_accumulation is None
    assert any("Does not fit" in note and "LoRA" in note for note in est.notes)
    assert est.trainable_params > 7e9  # full fine-tuning: every backbone weight trains


def test_batch_below_two_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        estimate_memory(_decoder_run(tmp_path), batch_size=1)


# --------------------------------------------------------------------------------------------------- CLI
def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(memory)
    return app


def test_cli_json_is_the_estimate():
    path = CONFIGS / "qwen2.5-3b-images-lf-amazontitles-1.3m.yaml"
    args = [str(path), "--json", "--labels", "1305265", "--gpu-gib", "141", "--set", "train.batch_size=512"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    cfg = load_config(path, ["train.batch_size=512"])
    assert got == estimate_memory(cfg, gpu_gib=141, num_labels=1305265).as_dict()
    assert got["batch_size"] == 512 and got["fits"] is True and math.isclose(got["gpu_bytes"] / 2**30, 141)
    per_rank = json.loads(CliRunner().invoke(_app(), [*args, "--nproc", "4"]).stdout)
    assert per_rank == estimate_memory(cfg, gpu_gib=141, num_labels=1305265, ranks=4).as_dict()
    assert per_rank["fsdp"] and per_rank["weights"] < got["weights"] / 2


def test_cli_table_names_the_terms():
    result = CliRunner().invoke(_app(), [str(CONFIGS / "minilm-l3-lf-amazontitles-131k.yaml"), "--batch-size", "64"])
    assert result.exit_code == 0, result.output
    for term in ("weights", "optimizer states", "activations, checkpointing", "peak, no checkpointing", "budget"):
        assert term in result.stdout
