"""LoRA on decoder backbones: what trains, how many parameters, save adapter -> load, merged export.

Adapters start as the identity (B = 0), so every round-trip test first perturbs them: equal embeddings after
a reload then prove that the adapter itself travelled, not just the base.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from support_models import make_tiny_bert, make_tiny_qwen2
from vixml.errors import ConfigError
from vixml.models.backbone import HEAD_CONFIG, TextBackbone
from vixml.models.lora import ADAPTER_META, count_parameters, lora_targets

pytest.importorskip("peft")

TEXTS = ["a dog barks", "the puppy plays with a red ball", "organic green tea"]
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
R = 4


def _perturb(backbone: TextBackbone, seed: int = 0) -> None:
    """Give every LoRA B matrix random values (they start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in backbone.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _encode(backbone: TextBackbone) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 2, backbone.hidden_size, generator=g)
    with torch.no_grad():
        return backbone.encode(
            **backbone.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=torch.tensor([[1, 0], [0, 0], [1, 1]])
        )


def test_only_adapters_train_and_their_count_is_exact(decoder_path):
    backbone = TextBackbone.from_pretrained(decoder_path, transform_dim=8)
    expected = sum(
        R * (m.in_features + m.out_features)
        for name, m in backbone.model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in TARGETS
    )
    layers = backbone.model.config.num_hidden_layers
    assert expected > 0 and len([n for n, _ in backbone.model.named_modules() if n.endswith("q_proj")]) == layers
    _, total_before = count_parameters(backbone.model)
    backbone.add_lora(r=R, alpha=8.0)
    trainable, total = count_parameters(backbone.model)
    assert trainable == expected and total == total_before + expected
    for name, p in backbone.model.named_parameters():
        assert p.requires_grad == ("lora_" in name), name
    assert all(p.requires_grad for p in backbone.transform.parameters())  # our head stays trainable


def test_adapted_model_starts_as_its_base_and_gradients_reach_only_adapters(decoder_path):
    backbone = TextBackbone.from_pretrained(decoder_path)
    before = _encode(backbone)
    backbone.add_lora(r=R, alpha=8.0, dropout=0.1)
    backbone.eval()
    torch.testing.assert_close(_encode(backbone), before)  # B = 0: the identity
    backbone.train()
    images = torch.randn(3, 2, backbone.hidden_size, requires_grad=True)
    backbone.encode(**backbone.tokenize(TEXTS, 32), extra_embeds=images).sum().backward()
    grads = {n: p.grad for n, p in backbone.model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert images.grad.abs().sum() > 0  # the image projection still learns through a frozen base


def test_rslora_scaling(qwen_path):
    rs = TextBackbone.from_pretrained(qwen_path).add_lora(r=16, alpha=32.0, rslora=True)
    plain = TextBackbone.from_pretrained(qwen_path).add_lora(r=16, alpha=32.0, rslora=False)

    def scaling(backbone):
        q = next(m for n, m in backbone.model.named_modules() if n.endswith("q_proj"))
        return q.scaling["default"]

    assert scaling(rs) == pytest.approx(32.0 / math.sqrt(16)) and scaling(plain) == pytest.approx(32.0 / 16)


def test_checkpointing_with_lora_gives_the_same_gradients(decoder_path):
    backbone = TextBackbone.from_pretrained(decoder_path).add_lora(r=R, alpha=8.0)
    _perturb(backbone)
    backbone.train()
    batch = backbone.tokenize(TEXTS, 32)
    grads = {}
    for on in (False, True):
        backbone.set_gradient_checkpointing(on)
        assert backbone.gradient_checkpointing == on
        backbone.zero_grad()
        backbone.encode(**batch).pow(2).sum().backward()
        grads[on] = {n: p.grad.clone() for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert grads[True].keys() == grads[False].keys()
    for name in grads[True]:
        torch.testing.assert_close(grads[True][name], grads[False][name], atol=1e-6, rtol=1e-4)


def test_save_adapter_then_load_gives_identical_embeddings(decoder_path, tmp_path):
    backbone = TextBackbone.from_pretrained(decoder_path, pooling="last", transform_dim=16).add_lora(r=R, alpha=8.0)
    _perturb(backbone)
    expected = _encode(backbone)
    backbone.save(tmp_path / "saved")
    files = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", ADAPTER_META, HEAD_CONFIG} <= files
    assert "model.safetensors" not in files and "config.json" not in files  # no base weights
    head = json.loads((tmp_path / "saved" / HEAD_CONFIG).read_text())
    assert head["lora"] and head["base_model"] == str(decoder_path) and head["kind"] == "decoder"
    meta = json.loads((tmp_path / "saved" / ADAPTER_META).read_text())
    assert meta["base_model"] == str(decoder_path) and meta["r"] == R and meta["rslora"] is True

    restored = TextBackbone.load(tmp_path / "saved")
    assert restored.has_lora and (restored.pooling, restored.embedding_dim) == ("last", 16)
    assert not any(p.requires_grad for p in restored.model.parameters())  # frozen for inference
    torch.testing.assert_close(_encode(restored), expected, atol=0, rtol=0)
    trainable = TextBackbone.load(tmp_path / "saved", trainable=True)
    assert count_parameters(trainable.model)[0] == count_parameters(backbone.model)[0]


def test_merged_export_loads_with_automodel(decoder_path, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    backbone = TextBackbone.from_pretrained(decoder_path).add_lora(r=R, alpha=8.0)
    _perturb(backbone)
    expected = _encode(backbone)
    backbone.export_merged(tmp_path / "merged")
    assert backbone.has_lora  # the export did not unload the live adapters
    torch.testing.assert_close(_encode(backbone), expected, atol=0, rtol=0)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    model = AutoModel.from_pretrained(tmp_path / "merged")
    assert not any("lora" in k for k in model.state_dict())
    plain = TextBackbone(model, AutoTokenizer.from_pretrained(tmp_path / "merged"))
    torch.testing.assert_close(_encode(plain), expected, atol=1e-5, rtol=0)
    base = TextBackbone.from_pretrained(decoder_path)
    assert (_encode(base) - expected).abs().max() > 1e-3  # the merge really changed the weights
    reloaded = TextBackbone.load(tmp_path / "merged")
    assert not reloaded.has_lora
    torch.testing.assert_close(_encode(reloaded), expected, atol=1e-5, rtol=0)


def test_default_targets_per_architecture(tmp_path, qwen_path):
    assert lora_targets(None, TextBackbone.from_pretrained(qwen_path).spec.lora_targets) == list(TARGETS)
    assert lora_targets(["q_proj"], TextBackbone.from_pretrained(qwen_path).spec.lora_targets) == ["q_proj"]
    bert = TextBackbone.from_pretrained(make_tiny_bert(tmp_path / "bert"))
    assert lora_targets(None, bert.spec.lora_targets) == "all-linear"  # no registered targets: every linear layer
    bert.add_lora(r=2, alpha=2.0)
    assert count_parameters(bert.model)[0] > 0


def test_bad_targets_list_the_model_modules(qwen_path):
    with pytest.raises(ConfigError, match="linear modules are named: .*down_proj"):
        TextBackbone.from_pretrained(qwen_path).add_lora(r=R, target_modules=["query_key_value"])


def test_adapters_twice_and_merging_without_adapters_are_refused(qwen_path, tmp_path):
    backbone = TextBackbone.from_pretrained(qwen_path).add_lora(r=R)
    with pytest.raises(ConfigError, match="already has LoRA"):
        backbone.add_lora(r=R)
    from vixml.models.lora import merged_state_dict, save_adapter

    plain = TextBackbone.from_pretrained(qwen_path)
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        merged_state_dict(plain.model)
    with pytest.raises(ConfigError, match="no LoRA adapters"):
        save_adapter(plain.model, tmp_path, base_model=str(qwen_path))


def test_adapter_reloads_its_base_by_the_name_it_was_given(tmp_path, monkeypatch):
    """The head records the base as named (a hub name), and load resolves that name on the loading machine."""
    import vixml.models.backbone as backbone_module

    local = make_tiny_qwen2(tmp_path / "local-copy")
    resolved = []

    def resolve(name):
        resolved.append(name)
        return str(local) if name == "org/tiny-qwen" else name

    monkeypatch.setattr(backbone_module, "resolve_pretrained", resolve)
    backbone = TextBackbone.from_pretrained("org/tiny-qwen").add_lora(r=R, alpha=8.0)
    _perturb(backbone)
    expected = _encode(backbone)
    backbone.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / HEAD_CONFIG).read_text())["base_model"] == "org/tiny-qwen"
    resolved.clear()
    torch.testing.assert_close(_encode(TextBackbone.load(tmp_path / "saved")), expected, atol=0, rtol=0)
    assert resolved == ["org/tiny-qwen"]


def test_checkpointing_switched_on_at_load_still_trains_the_adapters(qwen_path):
    backbone = TextBackbone.from_pretrained(qwen_path, gradient_checkpointing=True)
    backbone.add_lora(r=R, alpha=8.0)
    _perturb(backbone)
    assert backbone.gradient_checkpointing
    backbone.train()
    calls = []
    backbone.base_model.layers[0].self_attn.register_forward_hook(lambda *args: calls.append(1))
    backbone.encode(**backbone.tokenize(TEXTS, 32)).pow(2).sum().backward()
    assert len(calls) == 2  # recomputed in the backward pass
    lora_grads = [p.grad for n, p in backbone.model.named_parameters() if "lora_" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def _in_memory(model_type: str) -> TextBackbone:
    """A 1-layer random model of a registered type without a saved folder (LoRA target names are the point)."""
    from transformers import AutoConfig, AutoModel

    from support_models import train_byte_bpe_tokenizer

    tokenizer = train_byte_bpe_tokenizer(["<|endoftext|>"], eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    return TextBackbone(AutoModel.from_config(config), tokenizer)


@pytest.mark.parametrize("model_type", ["qwen3", "mistral", "phi3"])
def test_every_registered_target_exists_in_its_architecture(model_type):
    backbone = _in_memory(model_type)
    assert backbone.kind == "decoder"
    targets = lora_targets(None, backbone.spec.lora_targets)
    backbone.add_lora(r=2, alpha=2.0)
    adapted = {n.rsplit(".", 1)[-1] for n, m in backbone.model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == set(targets)
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(TEXTS, 16), extra_embeds=torch.randn(3, 2, 32))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
