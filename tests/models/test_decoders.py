"""Decoder LLMs as backbones: tiny random Qwen2, Llama and Gemma 3 checkpoints, loaded like hub models.

Oracles: the model run on the plainly tokenised prompt string, left padding against right padding, a row
without images against its text-only encoding, and gradients with checkpointing against gradients without.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from support_models import make_tiny_gemma3_multimodal
from vixml.errors import ConfigError
from vixml.models.architectures import architecture_spec, register_architecture
from vixml.models.backbone import TextBackbone, default_dtype

TEXTS = ["a dog barks", "the puppy plays with a red ball", "organic green tea"]
COLON_PROMPT = ("This product text:", "{text}", "and its image", "{images}", "{eos}")


def _images(backbone, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 2, backbone.hidden_size, generator=g), torch.tensor([[1, 0], [0, 0], [1, 1]])


def test_loads_as_a_decoder_with_the_architecture_settings(decoder_path):
    backbone = TextBackbone.from_pretrained(decoder_path)
    tok = backbone.tokenizer
    assert backbone.kind == "decoder" and backbone.prompt == (
        "This product text",
        "{text}",
        "and its image",
        "{images}",
        "{eos}",
    )
    assert tok.padding_side == "right" and tok.pad_token is not None
    assert backbone.model.get_input_embeddings().weight.dtype == torch.float32  # CPU default
    expected_eos = {"qwen2": "<|endoftext|>", "llama": "<|end_of_text|>", "gemma3_text": "<eos>"}[backbone.model_type]
    assert tok.convert_ids_to_tokens([backbone.assembler(False).eos_token_id]) == [expected_eos]
    if backbone.model_type == "llama":
        assert tok.pad_token == "<|end_of_text|>"  # Llama has no pad token: EOS pads


def test_prompt_reads_back_as_text(decoder_path):
    """The assembled ids decode to the paper's prompt: BOS once at the head, the text, the caption, EOS."""
    backbone = TextBackbone.from_pretrained(decoder_path)
    batch = backbone.tokenize(TEXTS[:2], 16)
    ids = backbone.assembler(True).assemble_ids(
        batch["input_ids"], batch["attention_mask"], torch.tensor([[1, 0], [0, 0]])
    )
    tok = backbone.tokenizer
    bos = tok.bos_token if backbone.model_type != "qwen2" else ""
    eos = tok.convert_ids_to_tokens([backbone.assembler(True).eos_token_id])[0]
    row0 = ids.inputs_embeds[0][ids.attention_mask[0].bool()].tolist()
    assert row0.count(-1) == 1 and row0[-2] == -1  # one image slot, just before EOS
    text0 = tok.decode([i for i in row0 if i >= 0])
    assert text0 == f"{bos}This product texta dog barksand its image{eos}"
    row1 = ids.inputs_embeds[1][ids.attention_mask[1].bool()].tolist()
    # no image: the caption stays, its image slots are compacted out (model.imageless_caption: keep, the reference)
    assert tok.decode(row1) == f"{bos}This product textthe puppy plays with a red balland its image{eos}"
    backbone = TextBackbone.from_pretrained(decoder_path, imageless_caption="drop")
    ids = backbone.assembler(True).assemble_ids(
        batch["input_ids"], batch["attention_mask"], torch.tensor([[1, 0], [0, 0]])
    )
    row1 = ids.inputs_embeds[1][ids.attention_mask[1].bool()].tolist()
    assert tok.decode(row1) == f"{bos}This product textthe puppy plays with a red ball{eos}"  # drop: no caption


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_text_only_equals_the_model_on_the_plain_prompt_string(decoder_path, pooling):
    """Oracle: the HF model on tokenizer("This product text:" + text + EOS) -- the same tokens, by construction
    of the byte-level pre-tokenizer at ':' -- pooled by hand."""
    backbone = TextBackbone.from_pretrained(decoder_path, pooling=pooling, prompt=COLON_PROMPT)
    tok = backbone.tokenizer
    eos = tok.convert_ids_to_tokens([backbone.assembler(False).eos_token_id])[0]
    batch = backbone.tokenize(TEXTS, 32)
    with torch.no_grad():
        ours = backbone.encode(**batch)
        assembled = backbone.assemble(**batch)
        expected = []
        for row, text in enumerate(TEXTS):
            ids = tok(f"This product text:{text}{eos}", return_tensors="pt")["input_ids"]
            real = assembled.attention_mask[row].bool()
            assert assembled.inputs_embeds[row][real].shape[0] == ids.shape[1]
            states = backbone.model(input_ids=ids).last_hidden_state[0]
            expected.append(states.mean(dim=0) if pooling == "mean" else states[-1])
    torch.testing.assert_close(ours, torch.nn.functional.normalize(torch.stack(expected), dim=1), atol=2e-6, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_left_padding_gives_the_right_padding_embeddings(decoder_path, pooling):
    spec = architecture_spec(TextBackbone.from_pretrained(decoder_path).model_type)
    model_type = TextBackbone.from_pretrained(decoder_path).model_type
    register_architecture(model_type, dataclasses.replace(spec, padding_side="left"))
    try:
        left = TextBackbone.from_pretrained(decoder_path, pooling=pooling)
    finally:
        register_architecture(model_type, spec)
    right = TextBackbone.from_pretrained(decoder_path, pooling=pooling)
    assert left.tokenizer.padding_side == "left" and right.tokenizer.padding_side == "right"
    images, mask = _images(right)
    with torch.no_grad():
        batch = left.assemble(**left.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask)
        assert batch.attention_mask[:, -1].all() and not batch.attention_mask[:, 0].all()  # really left-padded
        states = left.forward_embeds(batch.inputs_embeds, batch.attention_mask)
        assert not states.isnan().any()
        emb_left = left.encode(**left.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask)
        emb_right = right.encode(**right.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask)
    torch.testing.assert_close(emb_left, emb_right, atol=1e-5, rtol=0)


def test_images_change_rows_that_have_them_only(decoder_path):
    """With model.imageless_caption: drop, a row without images is encoded exactly as a text-only item."""
    backbone = TextBackbone.from_pretrained(decoder_path, imageless_caption="drop")
    images, mask = _images(backbone)
    batch = backbone.tokenize(TEXTS, 32)
    with torch.no_grad():
        text_only = backbone.encode(**batch)
        with_images = backbone.encode(**batch, extra_embeds=images, extra_mask=mask)
        # row 0 with images (a, missing) equals row 0 with the single image a
        single = backbone.encode(
            **backbone.tokenize(TEXTS[:1], 32), extra_embeds=images[:1, :1], extra_mask=torch.ones(1, 1)
        )
    torch.testing.assert_close(with_images[1], text_only[1], atol=1e-6, rtol=0)  # no image: as text only
    assert (with_images[[0, 2]] - text_only[[0, 2]]).abs().amax(dim=1).min() > 1e-3
    torch.testing.assert_close(with_images[:1], single, atol=1e-6, rtol=0)  # a missing slot is invisible


def test_encode_is_batch_independent(decoder_path):
    backbone = TextBackbone.from_pretrained(decoder_path, pooling="last")
    with torch.no_grad():
        together = backbone.encode(**backbone.tokenize(TEXTS, 32))
        alone = torch.cat([backbone.encode(**backbone.tokenize([t], 32)) for t in TEXTS])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)


def test_mean_and_last_pooling_differ_and_last_is_the_eos_state(qwen_path):
    mean = TextBackbone.from_pretrained(qwen_path, pooling="mean", normalize=False)
    last = TextBackbone.from_pretrained(qwen_path, pooling="last", normalize=False)
    batch = mean.tokenize(TEXTS, 32)
    with torch.no_grad():
        assembled = last.assemble(**batch)
        states = last.forward_embeds(assembled.inputs_embeds, assembled.attention_mask)
        at_eos = states[torch.arange(3), assembled.last_index]
        torch.testing.assert_close(last.encode(**batch), at_eos)
        assert (mean.encode(**batch) - at_eos).abs().max() > 1e-3


def test_gradient_checkpointing_toggles_and_recomputes(qwen_path):
    """Checkpointing on: the backward pass re-runs the layers' modules (their forward hooks fire again)."""
    backbone = TextBackbone.from_pretrained(qwen_path, gradient_checkpointing=True).train()
    assert backbone.gradient_checkpointing
    calls = []
    backbone.model.layers[0].self_attn.register_forward_hook(lambda *args: calls.append(1))
    batch = backbone.tokenize(TEXTS, 32)
    out = backbone.encode(**batch)
    forward_calls = len(calls)
    out.sum().backward()
    assert forward_calls == 1 and len(calls) == 2  # recomputed in the backward pass
    grads_on = backbone.model.layers[0].mlp.down_proj.weight.grad.clone()
    backbone.set_gradient_checkpointing(False)
    assert not backbone.gradient_checkpointing
    calls.clear()
    backbone.zero_grad()
    backbone.encode(**batch).sum().backward()
    assert len(calls) == 1
    torch.testing.assert_close(backbone.model.layers[0].mlp.down_proj.weight.grad, grads_on)


def test_bf16_weights_and_default_dtype(qwen_path):
    assert default_dtype(True, "cpu") == torch.float32 and default_dtype(False, None) == torch.float32
    backbone = TextBackbone.from_pretrained(qwen_path, dtype="bf16")
    assert backbone.model.get_input_embeddings().weight.dtype == torch.bfloat16
    images, mask = _images(backbone)
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask)
        reference = TextBackbone.from_pretrained(qwen_path).encode(
            **backbone.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask
        )
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, reference, atol=0.05, rtol=0)


def test_attention_implementations_agree(qwen_path):
    images, mask = _images(TextBackbone.from_pretrained(qwen_path))
    out = {}
    for impl in ("eager", "sdpa"):
        backbone = TextBackbone.from_pretrained(qwen_path, attn_implementation=impl)
        assert backbone.model.config._attn_implementation == impl
        with torch.no_grad():
            out[impl] = backbone.encode(**backbone.tokenize(TEXTS, 32), extra_embeds=images, extra_mask=mask)
    torch.testing.assert_close(out["eager"], out["sdpa"], atol=1e-5, rtol=0)


def test_liger_is_skipped_without_cuda(qwen_path, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="vixml.models.architectures"):
        TextBackbone.from_pretrained(qwen_path, liger=True)
    assert "Liger kernels need CUDA; skipped" in caplog.text


def test_four_bit_base_needs_cuda(qwen_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        TextBackbone.from_pretrained(qwen_path, load_in_4bit=True)


def test_multimodal_gemma3_checkpoint_gives_its_text_model(tmp_path):
    path = make_tiny_gemma3_multimodal(tmp_path / "gemma3")
    backbone = TextBackbone.from_pretrained(path)
    assert type(backbone.model).__name__ == "Gemma3TextModel" and backbone.model_type == "gemma3_text"
    assert backbone.kind == "decoder" and backbone.hidden_size == 32
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(TEXTS, 32))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


def test_unknown_type_runs_on_logged_generic_defaults(tmp_path, caplog):
    """GPT-2 has no registered spec: decoder read from transformers' registries, EOS pads, right padding."""
    from transformers import GPT2Config, GPT2Model

    from support_models import train_byte_bpe_tokenizer

    tokenizer = train_byte_bpe_tokenizer(["<|endoftext|>"], eos_token="<|endoftext|>")
    GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64)).save_pretrained(
        tmp_path
    )
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO):
        backbone = TextBackbone.from_pretrained(tmp_path)
    assert "'gpt2' has no registered architecture spec" in caplog.text and "generic defaults" in caplog.text
    assert backbone.kind == "decoder" and backbone.tokenizer.pad_token == "<|endoftext|>"
    assert backbone.assembler(True).padding_side == "right" and backbone.assembler(True).compact
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(TEXTS, 32), extra_embeds=torch.randn(3, 1, 32))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


def test_kind_override_and_encoder_images_need_a_slot(qwen_path):
    as_encoder = TextBackbone.from_pretrained(qwen_path, kind="encoder")
    assert as_encoder.kind == "encoder" and as_encoder.prompt == ("{images}", "{text}")
    decoder = TextBackbone.from_pretrained(qwen_path, prompt=("{images}", "{text}", "{eos}"))  # a layout of its own
    ids = decoder.assembler(True).assemble_ids(torch.tensor([[5, 6]]), torch.ones(1, 2), torch.ones(1, 1))
    assert ids.inputs_embeds.tolist() == [[-1, 5, 6, decoder.assembler(True).eos_token_id]]
    with pytest.raises(ConfigError, match="model.prompt"):
        TextBackbone.from_pretrained(qwen_path, prompt=("{images}",))
    no_images = TextBackbone.from_pretrained(qwen_path, prompt=("{text}", "{eos}"))
    with pytest.raises(ConfigError, match="no '\\{images\\}'"):
        no_images.encode(**no_images.tokenize(TEXTS, 8), extra_embeds=torch.zeros(3, 1, 32))
    with pytest.raises(ConfigError, match="unknown backbone kind"):
        TextBackbone.from_pretrained(qwen_path, kind="seq2seq")
