"""The sequence assembler, token by token: prompts, masks and last-token indices built by hand.

A word-level fake tokenizer and an "identity" embedding (token i embeds as the vector [i, i, ...]) make every
assembled slot readable: the embeddings decode back to the ids the layout should hold.
"""

from __future__ import annotations

import pytest
import torch

from vixml.errors import ConfigError
from vixml.models.assembler import ENCODER_SEGMENTS, SequenceAssembler, prompt_assemblers

PAD, EOS, BOS, UNK = 0, 2, 1, 3
VOCAB = {"<pad>": PAD, "<bos>": BOS, "<eos>": EOS, "<unk>": UNK, "<|endoftext|>": 4}
for i, word in enumerate("this product text and its image dog cat red ball".split()):
    VOCAB[word] = 10 + i
THIS_PRODUCT_TEXT = [10, 11, 12]
AND_ITS_IMAGE = [13, 14, 15]
PROMPT = ("this product text", "{text}", "and its image", "{images}", "{eos}")
H = 3


class WordTokenizer:
    """Just what the assembler calls: ``__call__(text, add_special_tokens=False)``, ids of tokens, EOS/UNK ids."""

    eos_token_id, unk_token_id = EOS, UNK

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [VOCAB.get(w, UNK) for w in text.split()]}

    def convert_tokens_to_ids(self, token):
        return VOCAB.get(token, UNK)


def identity_embed(ids: torch.Tensor) -> torch.Tensor:
    return ids.float().unsqueeze(-1).expand(*ids.shape, H).clone()


def image_tokens(batch: int, n: int) -> torch.Tensor:
    """Image j of row b embeds as -(100 * (b + 1) + j): unmistakable among token ids."""
    values = -(100.0 * (torch.arange(batch)[:, None] + 1) + torch.arange(n)[None, :])
    return values.unsqueeze(-1).expand(batch, n, H).clone()


def decoded(out) -> list[list[int]]:
    """Each row's real slots, read back from the embeddings."""
    values = out.inputs_embeds[..., 0].round().long()
    return [values[b][out.attention_mask[b].bool()].tolist() for b in range(values.shape[0])]


# rows: "dog" (1 token), "red ball cat" (3), "cat dog" (2); padded right with PAD
TEXT_IDS = torch.tensor([[16, PAD, PAD], [18, 19, 17], [17, 16, PAD]])
TEXT_MASK = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0]])
IMAGE_MASK = torch.tensor([[1, 0], [0, 0], [0, 1]])  # row 1 has no image at all


def expected_rows() -> list[list[int]]:
    """The paper's prompt by hand, row by row (row 1 has no image: no caption, no image slot)."""
    return [
        THIS_PRODUCT_TEXT + [16] + AND_ITS_IMAGE + [-100] + [EOS],
        THIS_PRODUCT_TEXT + [18, 19, 17] + [EOS],
        THIS_PRODUCT_TEXT + [17, 16] + AND_ITS_IMAGE + [-301] + [EOS],
    ]


@pytest.fixture
def assemblers():
    return prompt_assemblers(PROMPT, WordTokenizer())


@pytest.mark.parametrize("side", ["right", "left"])
def test_prompt_with_images_by_hand(side):
    full = prompt_assemblers(PROMPT, WordTokenizer(), padding_side=side)[True]
    out = full.assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    rows = expected_rows()
    width = 3 + 3 + 3 + 2 + 1  # every segment's width: the layout never waits for the device to trim
    assert out.inputs_embeds.shape == (3, width, H) and out.attention_mask.shape == (3, width)
    assert decoded(out) == rows
    lengths = [len(r) for r in rows]
    for b, n in enumerate(lengths):
        real = [1] * n
        pads = [0] * (width - n)
        assert out.attention_mask[b].tolist() == (real + pads if side == "right" else pads + real)
    assert out.last_index.tolist() == ([n - 1 for n in lengths] if side == "right" else [width - 1] * 3)
    last_values = out.inputs_embeds[torch.arange(3), out.last_index, 0]
    assert last_values.tolist() == [EOS] * 3  # the last real token is the prompt's EOS on both sides


@pytest.mark.parametrize("side", ["right", "left"])
def test_text_only_prompt_by_hand(assemblers, side):
    text_only = prompt_assemblers(PROMPT, WordTokenizer(), padding_side=side)[False]
    assert text_only.segments == ("this product text", "{text}", "{eos}")
    out = text_only.assemble(identity_embed, TEXT_IDS, TEXT_MASK)
    assert decoded(out) == [
        THIS_PRODUCT_TEXT + [16, EOS],
        THIS_PRODUCT_TEXT + [18, 19, 17, EOS],
        THIS_PRODUCT_TEXT + [17, 16, EOS],
    ]
    if side == "right":
        assert out.attention_mask.tolist()[0] == [1] * 5 + [0] * 2
        assert out.last_index.tolist() == [4, 6, 5]
    else:
        assert out.attention_mask.tolist()[0] == [0] * 2 + [1] * 5
        assert out.last_index.tolist() == [6, 6, 6]


def test_text_padding_side_of_the_input_does_not_matter(assemblers):
    """Left-padded text ids (a left-padding tokenizer's cache) assemble to exactly the same batch."""
    left_ids = torch.tensor([[PAD, PAD, 16], [18, 19, 17], [PAD, 17, 16]])
    left_mask = torch.tensor([[0, 0, 1], [1, 1, 1], [0, 1, 1]])
    for with_images in (True, False):
        extra = (image_tokens(3, 2), IMAGE_MASK) if with_images else ()
        right = assemblers[with_images].assemble(identity_embed, TEXT_IDS, TEXT_MASK, *extra)
        left = assemblers[with_images].assemble(identity_embed, left_ids, left_mask, *extra)
        assert torch.equal(right.attention_mask, left.attention_mask)
        real = right.attention_mask.bool()
        assert torch.equal(right.inputs_embeds[real], left.inputs_embeds[real])


def test_row_without_images_equals_its_text_only_assembly(assemblers):
    with_images = assemblers[True].assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    text_only = assemblers[False].assemble(identity_embed, TEXT_IDS, TEXT_MASK)
    assert decoded(with_images)[1] == decoded(text_only)[1]


def test_assemble_ids_matches_assemble(assemblers):
    out = assemblers[True].assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    ids = assemblers[True].assemble_ids(TEXT_IDS, TEXT_MASK, IMAGE_MASK)
    assert torch.equal(ids.attention_mask, out.attention_mask) and torch.equal(ids.last_index, out.last_index)
    real = ids.attention_mask.bool()
    assert ids.inputs_embeds[0][real[0]].tolist() == THIS_PRODUCT_TEXT + [16] + AND_ITS_IMAGE + [-1, EOS]
    assert ids.inputs_embeds[2][real[2]].tolist() == THIS_PRODUCT_TEXT + [17, 16] + AND_ITS_IMAGE + [-2, EOS]


def test_bos_goes_first_and_leaves_the_text():
    """Llama/Gemma tokenizers start every text with BOS: it moves to the head of the prompt, once."""
    ids = torch.tensor([[BOS, 16, PAD], [PAD, BOS, 17]])  # right- and left-padded rows
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    assembler = prompt_assemblers(PROMPT, WordTokenizer(), bos_token_id=BOS)[False]
    out = assembler.assemble(identity_embed, ids, mask)
    assert decoded(out) == [[BOS] + THIS_PRODUCT_TEXT + [16, EOS], [BOS] + THIS_PRODUCT_TEXT + [17, EOS]]
    # a text that does not start with BOS keeps all its tokens
    out = assembler.assemble(identity_embed, torch.tensor([[16, 17]]), torch.ones(1, 2, dtype=torch.long))
    assert decoded(out) == [[BOS] + THIS_PRODUCT_TEXT + [16, 17, EOS]]


def test_encoder_layout_keeps_masked_slots_in_place():
    """Encoders with positions from the mask: images first, nothing moved (no gather)."""
    assembler = SequenceAssembler(ENCODER_SEGMENTS, None, compact=False)
    out = assembler.assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    values = out.inputs_embeds[..., 0].round().long()
    assert values[0].tolist() == [-100, -101, 16, PAD, PAD]
    assert out.attention_mask.tolist() == [[1, 0, 1, 0, 0], [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]]
    assert out.last_index.tolist() == [2, 4, 3]


def test_encoder_layout_compacted():
    assembler = SequenceAssembler(ENCODER_SEGMENTS, None, compact=True)
    out = assembler.assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    assert decoded(out) == [[-100, 16], [18, 19, 17], [-301, 17, 16]]
    assert out.last_index.tolist() == [1, 2, 2]


@pytest.mark.parametrize("side", ["right", "left"])
def test_compaction_equals_a_per_row_reference(side):
    """Oracle: a Python loop that moves each row's masked slots to one side, on 64 random rows."""
    g = torch.Generator().manual_seed(0)
    b, t, n = 64, 9, 3
    ids = torch.randint(10, 20, (b, t), generator=g)
    mask = (torch.rand(b, t, generator=g) > 0.4).long()
    img_mask = (torch.rand(b, n, generator=g) > 0.5).long()
    assembler = SequenceAssembler(("{text}", "{images}", "{eos}"), WordTokenizer(), padding_side=side)
    out = assembler.assemble(identity_embed, ids, mask, image_tokens(b, n), img_mask)
    for row in range(b):
        slots = ids[row].tolist() + [-(100 * (row + 1) + j) for j in range(n)] + [EOS]
        keep = mask[row].tolist() + img_mask[row].tolist() + [1]
        real = [s for s, k in zip(slots, keep, strict=True) if k]
        pads = [s for s, k in zip(slots, keep, strict=True) if not k]
        expected = real + pads if side == "right" else pads + real
        assert out.inputs_embeds[row, :, 0].round().long().tolist() == expected
        assert out.attention_mask[row].tolist() == sorted(keep, reverse=side == "right")


def test_gradients_flow_to_image_tokens_and_embeddings(assemblers):
    embedding = torch.nn.Embedding(30, H)
    images = torch.randn(3, 2, H, requires_grad=True)
    out = assemblers[True].assemble(embedding, TEXT_IDS, TEXT_MASK, images, IMAGE_MASK)
    (out.inputs_embeds * out.attention_mask.unsqueeze(-1)).sum().backward()
    assert images.grad[IMAGE_MASK.bool()].abs().min() > 0  # present images get gradient
    assert images.grad[~IMAGE_MASK.bool()].abs().max() == 0  # masked ones get none
    assert embedding.weight.grad[16].abs().sum() > 0 and embedding.weight.grad[PAD].abs().sum() == 0


def test_embeddings_take_the_token_dtype(assemblers):
    def bf16_embed(ids):
        return identity_embed(ids).to(torch.bfloat16)

    out = assemblers[True].assemble(bf16_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    assert out.inputs_embeds.dtype == torch.bfloat16 and out.attention_mask.dtype == torch.long


def test_bad_segment_lists_and_inputs(assemblers):
    with pytest.raises(ConfigError, match="unknown placeholder"):
        SequenceAssembler(("{text}", "{image}"), WordTokenizer())
    with pytest.raises(ConfigError, match="exactly once"):
        SequenceAssembler(("a", "{eos}"), WordTokenizer())
    with pytest.raises(ConfigError, match="model.prompt"):
        prompt_assemblers(("{text}", "{text}"), WordTokenizer())
    with pytest.raises(ConfigError, match="tokenises to nothing"):
        SequenceAssembler(("", "{text}"), WordTokenizer())
    with pytest.raises(ConfigError, match="no image tokens"):
        assemblers[True].assemble(identity_embed, TEXT_IDS, TEXT_MASK)
    with pytest.raises(ConfigError, match="project them"):
        assemblers[True].assemble(identity_embed, TEXT_IDS, TEXT_MASK, torch.zeros(3, 2, H + 1))
    with pytest.raises(ConfigError, match="image mask"):
        assemblers[True].assemble(identity_embed, TEXT_IDS, TEXT_MASK, torch.zeros(3, 2, H), torch.ones(3, 3))


def test_eos_falls_back_to_the_tokenizers_and_errors_without_one():
    assert SequenceAssembler(PROMPT, WordTokenizer(), eos_token="<|endoftext|>").eos_token_id == 4
    assert SequenceAssembler(PROMPT, WordTokenizer(), eos_token="<|not-in-vocab|>").eos_token_id == EOS

    class NoEos(WordTokenizer):
        eos_token_id = None

    with pytest.raises(ConfigError, match="no EOS token"):
        SequenceAssembler(PROMPT, NoEos())
    assert SequenceAssembler(("{text}",), NoEos()).eos_token_id is None  # only needed when {eos} is used


def test_keep_caption_gives_an_imageless_row_the_reference_caption():
    """model.imageless_caption: keep (the reference): row 1 keeps "and its image"; its masked slots compact out."""
    full = prompt_assemblers(PROMPT, WordTokenizer(), keep_caption=True)[True]
    out = full.assemble(identity_embed, TEXT_IDS, TEXT_MASK, image_tokens(3, 2), IMAGE_MASK)
    rows = expected_rows()
    rows[1] = THIS_PRODUCT_TEXT + [18, 19, 17] + AND_ITS_IMAGE + [EOS]
    assert decoded(out) == rows
    assert out.last_index.tolist() == [len(r) - 1 for r in rows]  # padding compacted out of the middle
