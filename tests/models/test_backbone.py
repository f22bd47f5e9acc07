"""TextBackbone and pooling: hand-computed pooling, the embeddings path, extra tokens, save/load, real MiniLM."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import torch

from support_models import make_tiny_bert, make_tiny_distilbert, minilm_path
from vixml.errors import ConfigError, DataError
from vixml.models.assembler import ENCODER_SEGMENTS, SequenceAssembler
from vixml.models.backbone import (
    HEAD_CONFIG,
    ArchitectureSpec,
    TextBackbone,
    architecture_spec,
    register_architecture,
)
from vixml.models.pooling import pool

TEXTS = ["a dog barks", "quantum physics describes tiny particles", "the puppy plays"]


@pytest.fixture(scope="module", params=["bert", "distilbert"])
def tiny_path(request, tmp_path_factory):
    make = make_tiny_bert if request.param == "bert" else make_tiny_distilbert
    return make(tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return TextBackbone.from_pretrained(tiny_path)


# ---- pooling by hand ---------------------------------------------------------------------------------


HIDDEN = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]],
        [[-1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [9.0, 9.0]],
    ]
)  # (2, 4, 2)


def test_mean_pooling_ignores_padding():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    expected = torch.tensor([[2.0, 3.0], [1.0 / 3.0, 1.0]])
    torch.testing.assert_close(pool(HIDDEN, mask, "mean"), expected)


def test_mean_pooling_accumulates_in_float32():
    hidden = torch.full((1, 300, 1), 1.0 + 2**-7, dtype=torch.bfloat16)  # exact in bf16; a bf16 sum is not
    hidden[0, 0, 0] = 256.0
    out = pool(hidden, torch.ones(1, 300), "mean")
    assert out.dtype == torch.bfloat16
    expected = torch.tensor((256.0 + 299 * (1.0 + 2**-7)) / 300).to(torch.bfloat16)
    assert out.item() == expected.item()


def test_cls_pooling_takes_first_real_position():
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    torch.testing.assert_close(pool(HIDDEN, right, "cls"), torch.tensor([[1.0, 2.0], [-1.0, 0.0]]))
    torch.testing.assert_close(pool(HIDDEN, left, "cls"), torch.tensor([[5.0, 6.0], [0.0, 1.0]]))


def test_last_pooling_under_right_and_left_padding():
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    torch.testing.assert_close(pool(HIDDEN, right, "last"), torch.tensor([[3.0, 4.0], [2.0, 2.0]]))
    torch.testing.assert_close(pool(HIDDEN, left, "last"), torch.tensor([[7.0, 8.0], [9.0, 9.0]]))


def test_unknown_pooling_mode_lists_valid_ones():
    with pytest.raises(ConfigError, match="mean, cls, last"):
        pool(HIDDEN, torch.ones(2, 4), "max")


# ---- the backbone ------------------------------------------------------------------------------------


def test_attributes(tiny, tiny_path):
    assert tiny.model_type in {"bert", "distilbert"}
    assert tiny.hidden_size == tiny.embedding_dim == 32
    assert tiny.tokenizer.padding_side == "right"
    batch = tiny.tokenize(TEXTS, max_length=5)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == (3, 5)  # truncated to max_length
    longest = tiny.tokenize(["a dog", "a dog barks"], max_length=64)["input_ids"]
    assert longest.shape[1] == len(tiny.tokenizer("a dog barks")["input_ids"])  # padded to the longest only


def test_inputs_embeds_path_equals_input_ids_path(tiny):
    batch = tiny.tokenize(TEXTS, max_length=16)
    with torch.no_grad():
        reference = tiny.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        ours = tiny.forward_embeds(tiny.model.get_input_embeddings()(batch["input_ids"]), batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert torch.equal(ours[real], reference[real])


def test_embeddings_are_l2_normalised_and_differ(tiny):
    with torch.no_grad():
        emb = tiny.encode(**tiny.tokenize(TEXTS, max_length=16))
    assert emb.shape == (3, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert (emb[0] - emb[1]).abs().max() > 1e-3


def test_encode_is_batch_independent(tiny):
    """A text's embedding does not depend on the other texts' lengths (padding is invisible)."""
    with torch.no_grad():
        together = tiny.encode(**tiny.tokenize(TEXTS, max_length=16))
        alone = tiny.encode(**tiny.tokenize(TEXTS[:1], max_length=16))
    torch.testing.assert_close(together[:1], alone, atol=1e-6, rtol=0)


def test_extra_tokens_change_the_output(tiny):
    batch = tiny.tokenize(TEXTS, max_length=16)
    extra = torch.randn(3, 2, tiny.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        text_only = tiny.encode(**batch)
        with_extra = tiny.encode(**batch, extra_embeds=extra)
    assert (with_extra - text_only).abs().amax(dim=1).min() > 1e-3


def test_masked_extra_tokens_give_the_text_only_output(tiny_path):
    """model.image_positions: mask (vixml's option; the reference's fixed positions are tested below)."""
    tiny = TextBackbone.from_pretrained(tiny_path, image_positions="mask")
    batch = tiny.tokenize(TEXTS, max_length=16)
    extra = torch.randn(3, 3, tiny.hidden_size, generator=torch.Generator().manual_seed(1)) * 5
    extra_mask = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0, 0]])
    with torch.no_grad():
        text_only = tiny.encode(**batch)
        mixed = tiny.encode(**batch, extra_embeds=extra, extra_mask=extra_mask)
    torch.testing.assert_close(mixed[[0, 2]], text_only[[0, 2]], atol=1e-6, rtol=0)
    assert (mixed[1] - text_only[1]).abs().max() > 1e-3


def test_without_mask_positions_masked_extra_tokens_shift_the_text(tiny_path):
    """Planted defect: default position ids count the masked slots, so an empty image slot changes the text."""
    model_type = json.loads((tiny_path / "config.json").read_text())["model_type"]
    original = architecture_spec(model_type)
    register_architecture(model_type, dataclasses.replace(original, positions_from_mask=False))
    try:
        backbone = TextBackbone.from_pretrained(tiny_path, image_positions="mask")
        batch = backbone.tokenize(TEXTS, max_length=16)
        with torch.no_grad():
            text_only = backbone.encode(**batch)
            empty = backbone.encode(**batch, extra_embeds=torch.zeros(3, 2, 32), extra_mask=torch.zeros(3, 2))
        assert (empty - text_only).abs().max() > 1e-3
    finally:
        register_architecture(model_type, original)


def _encoder_inputs(text_embeds, text_mask, extra=None, extra_mask=None):
    """The encoder layout (images before the text, no compaction) on ready-made text embeddings."""
    segments = ENCODER_SEGMENTS if extra is not None else ENCODER_SEGMENTS[1:]
    ids = torch.zeros(text_mask.shape, dtype=torch.long)
    out = SequenceAssembler(segments, None, compact=False).assemble(
        lambda _ids: text_embeds, ids, text_mask, extra, extra_mask
    )
    return out.inputs_embeds, out.attention_mask


def test_extra_tokens_go_before_the_text():
    text, text_mask = torch.ones(1, 2, 3), torch.tensor([[1, 1]])
    extra, extra_mask = torch.full((1, 1, 3), 7.0), torch.tensor([[0]])
    embeds, mask = _encoder_inputs(text, text_mask, extra, extra_mask)
    assert embeds[0, :, 0].tolist() == [7.0, 1.0, 1.0] and mask.tolist() == [[0, 1, 1]]
    with pytest.raises(ConfigError, match="project them"):
        _encoder_inputs(text, text_mask, torch.ones(1, 1, 4))


def test_mean_pooling_covers_extra_tokens(tiny):
    batch = tiny.tokenize(TEXTS[:1], max_length=16)
    extra = torch.randn(1, 2, 32)
    with torch.no_grad():
        embeds, mask = _encoder_inputs(
            tiny.model.get_input_embeddings()(batch["input_ids"]), batch["attention_mask"], extra
        )
        states = tiny.forward_embeds(embeds, mask)
        expected = torch.nn.functional.normalize(states[0].mean(dim=0), dim=0)
        torch.testing.assert_close(tiny.encode(**batch, extra_embeds=extra)[0], expected)


def test_gradients_reach_extra_tokens_and_weights(tiny_path):
    backbone = TextBackbone.from_pretrained(tiny_path, transform_dim=8, gradient_checkpointing=True).train()
    model = backbone.model
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    extra = torch.randn(3, 2, 32, requires_grad=True)
    backbone.encode(**backbone.tokenize(TEXTS, 16), extra_embeds=extra).sum().backward()
    assert extra.grad is not None and extra.grad.abs().sum() > 0
    assert backbone.transform.weight.grad.abs().sum() > 0
    assert backbone.model.get_input_embeddings().weight.grad.abs().sum() > 0


def test_save_load_round_trip(tiny_path, tmp_path):
    backbone = TextBackbone.from_pretrained(tiny_path, pooling="cls", transform_dim=16, normalize=False)
    backbone.save(tmp_path / "saved")
    restored = TextBackbone.load(tmp_path / "saved")
    assert (restored.pooling, restored.embedding_dim, restored.normalize) == ("cls", 16, False)
    batch = backbone.tokenize(TEXTS, max_length=16)
    extra = torch.randn(3, 2, 32)
    with torch.no_grad():
        assert torch.equal(backbone.encode(**batch, extra_embeds=extra), restored.encode(**batch, extra_embeds=extra))
    assert torch.equal(restored.tokenize(TEXTS, 16)["input_ids"], batch["input_ids"])


def test_interrupted_save_is_refused(tiny_path, tmp_path):
    TextBackbone.from_pretrained(tiny_path).save(tmp_path / "saved")
    (tmp_path / "saved" / HEAD_CONFIG).unlink()  # what a save killed before its last file leaves
    with pytest.raises(DataError, match="did not complete"):
        TextBackbone.load(tmp_path / "saved")


def test_bad_arguments(tiny_path):
    with pytest.raises(ConfigError, match="valid modes"):
        TextBackbone.from_pretrained(tiny_path, pooling="max")
    with pytest.raises(ConfigError, match="unknown dtype"):
        TextBackbone.from_pretrained(tiny_path, dtype="fp8")


def test_bf16_weights(tiny_path):
    backbone = TextBackbone.from_pretrained(tiny_path, dtype="bf16")
    assert backbone.model.get_input_embeddings().weight.dtype == torch.bfloat16
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(TEXTS, 16), extra_embeds=torch.randn(3, 1, 32))
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


def test_unknown_model_type_uses_logged_generic_defaults(caplog):
    with caplog.at_level(logging.INFO, logger="vixml.models.backbone"):
        spec = architecture_spec("not-a-model-type")
    assert spec == ArchitectureSpec() and "generic defaults" in caplog.text


def test_missing_pad_token_falls_back_to_eos(tiny_path):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    tokenizer.eos_token = "[SEP]"
    tokenizer.pad_token = None
    register_architecture("vixml-test-type", ArchitectureSpec(pad_token_fallback="eos_token"))
    model = AutoModel.from_pretrained(tiny_path)
    model.config.model_type = "vixml-test-type"
    assert TextBackbone(model, tokenizer).tokenizer.pad_token == "[SEP]"
    tokenizer.pad_token = None
    register_architecture("vixml-test-type", ArchitectureSpec(pad_token_fallback=None))
    with pytest.raises(ConfigError, match="no pad token"):
        TextBackbone(model, tokenizer)


# ---- the real MiniLM ---------------------------------------------------------------------------------


def test_real_minilm_loads_offline_and_ranks_sensibly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = TextBackbone.from_pretrained(minilm_path())
    assert (backbone.model_type, backbone.hidden_size) == ("bert", 384)
    texts = ["a dog barks", "a puppy", "quantum physics", "a cat meows"]
    with torch.no_grad():
        emb = backbone.encode(**backbone.tokenize(texts, max_length=32))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[0, 3] > sim[0, 2]


@pytest.mark.slow  # importing sentence-transformers takes several seconds
def test_real_minilm_matches_sentence_transformers():
    """Oracle: the reference library's embeddings of the same checkpoint (mean pooling + Normalize)."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    path = minilm_path()
    texts = ["a dog barks", "stainless steel kitchen knife set with a wooden block", "quantum physics"]
    reference = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    expected = torch.as_tensor(reference.encode(texts, convert_to_numpy=True))
    backbone = TextBackbone.from_pretrained(path)
    with torch.no_grad():
        ours = backbone.encode(**backbone.tokenize(texts, max_length=reference.max_seq_length))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_image_positions_fixed_is_the_references_plain_concatenation(tiny_path):
    """model.image_positions: fixed = HF's default arange over [N image slots, text]: [CLS] at N, images or not."""
    fixed = TextBackbone.from_pretrained(tiny_path)
    counted = TextBackbone.from_pretrained(tiny_path, image_positions="mask")
    batch = fixed.tokenize(TEXTS, max_length=16)
    extra = torch.randn(3, 2, 32)
    extra_mask = torch.tensor([[1, 1], [0, 0], [1, 0]])
    with torch.no_grad():
        embeds = torch.cat((extra, fixed.model.get_input_embeddings()(batch["input_ids"])), dim=1)
        mask = torch.cat((extra_mask, batch["attention_mask"]), dim=1)
        states = fixed.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # the reference
        reference = torch.nn.functional.normalize(pool(states, mask, "mean"), dim=-1)
        ours = fixed.encode(**batch, extra_embeds=extra, extra_mask=extra_mask)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
        other = counted.encode(**batch, extra_embeds=extra, extra_mask=extra_mask)
        text_only = counted.encode(**batch)
    torch.testing.assert_close(other[1], text_only[1], atol=1e-5, rtol=1e-5)  # mask: as if no image slot
    assert not torch.allclose(ours[1], other[1], atol=1e-4)  # fixed: the text sits after two empty slots
    torch.testing.assert_close(ours[0], other[0], atol=1e-5, rtol=1e-5)  # every image present: the same


def test_layout_switches_survive_save_and_load(tiny_path, tmp_path):
    backbone = TextBackbone.from_pretrained(tiny_path, image_positions="mask", imageless_caption="drop")
    backbone.save(tmp_path / "saved")
    restored = TextBackbone.load(tmp_path / "saved")
    assert (restored.image_positions, restored.imageless_caption) == ("mask", "drop")
    with pytest.raises(ConfigError, match="image_positions"):
        TextBackbone.from_pretrained(tiny_path, image_positions="sideways")
