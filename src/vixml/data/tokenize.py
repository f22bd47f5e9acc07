"""The tokenisation cache: each text file is tokenised once per tokenizer and length, then memory-mapped.

Training re-reads every query and label text each epoch (NGAME re-embeds the whole training set too), and
tokenising millions of titles costs minutes. The reference code pre-tokenises into memmaps; so do we, with
a cache that knows when it is stale and that is never left half-written:

    <root>/<key>/<split>.ids.npy      int32 (n, max_length), padded with the pad id on the tokenizer's side
    <root>/<key>/<split>.lengths.npy  int32 (n,), the number of real tokens of each row
    <root>/<key>/<split>.json         what the arrays were built from; written last, so it marks completion

``root`` defaults to ``<dataset>/.cache/tokens``. ``key`` hashes the tokenizer's identity (its full
``tokenizer.json`` content for fast tokenizers, else its vocabulary and name), the max length and the padding
side, so that changing any of them selects another folder instead of reusing wrong ids.

This module imports neither torch nor transformers at import time (``vixml.data`` must stay light).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vixml.atomic import atomic_open, atomic_path, refuse_links
from vixml.data.file_kinds import NUMPY_READ_ERRORS
from vixml.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["TokenArrays", "TokenCache", "tokenizer_identity", "cache_key"]

logger = logging.getLogger(__name__)

_FORMAT = "vixml.tokens"
_VERSION = 1
_HASH_BLOCK = 1 << 22  # bytes read at a time while hashing a source file


@dataclass(frozen=True)
class TokenArrays:
    """Pre-tokenised texts: a memory-mapped id matrix and the real length of each row.

    Attributes:
        input_ids: (n, max_length) int32, read-only memmap, padded with ``pad_id`` on ``padding_side``.
        lengths: (n,) int32 real tokens per row (special tokens included).
        pad_id: the tokenizer's pad token id.
        padding_side: ``"right"`` or ``"left"``, where the padding of ``input_ids`` sits.
    """

    input_ids: np.ndarray
    lengths: np.ndarray
    pad_id: int
    padding_side: str

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_length(self) -> int:
        return int(self.input_ids.shape[1])

    def batch(self, rows: Sequence[int] | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather rows, trimmed to the longest of them (padding side kept).

        Args:
            rows: (B,) row indices, in any order, repeats allowed.

        Returns:
            input_ids (B, T) int64 and attention_mask (B, T) int64, where T is the largest length among
            ``rows`` (at least 1).
        """
        import torch

        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        lengths = self.lengths[rows].astype(np.int64)  # (B,)
        width = max(int(lengths.max(initial=0)), 1)
        positions = np.arange(width)
        if self.padding_side == "left":
            ids = self.input_ids[rows, self.max_length - width :]
            mask = positions >= (width - lengths)[:, None]
        else:
            ids = self.input_ids[rows, :width]
            mask = positions < lengths[:, None]
        return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """What determines the ids a tokenizer produces, as a JSON-able dict (hashes stand for big contents).

    For a fast tokenizer that is its whole ``tokenizer.json`` (normaliser, model, vocabulary, special
    tokens, post-processor) without the truncation/padding state that each call changes; for a slow one its
    vocabulary and name. The class, size, special tokens and padding side are added for both.
    """
    identity: dict[str, Any] = {
        "class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        "size": len(tokenizer),
        "padding_side": tokenizer.padding_side,
        "pad_token_id": tokenizer.pad_token_id,
        "special_tokens": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
    }
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        content = json.loads(backend.to_str())
        content.pop("truncation", None)
        content.pop("padding", None)
        identity["tokenizer_json"] = _digest(json.dumps(content, sort_keys=True, ensure_ascii=False))
    else:
        identity["name_or_path"] = str(tokenizer.name_or_path)
        identity["vocab"] = _digest(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False))
    return identity


def cache_key(tokenizer: Any, max_length: int) -> str:
    """Folder name of the cache for ``tokenizer`` at ``max_length`` (16 hex digits)."""
    identity = {"tokenizer": tokenizer_identity(tokenizer), "max_length": int(max_length)}
    return _digest(json.dumps(identity, sort_keys=True))[:16]


class TokenCache:
    """Tokenise a split once, keep it as memory-mapped arrays, rebuild it when its source changes.

    Args:
        root: the cache folder (``<dataset>/.cache/tokens`` by :meth:`for_dataset`).
        chunk_size: texts handed to the tokenizer's batch call at a time (bounds memory).
        progress: show a tqdm progress bar while tokenising.
    """

    def __init__(self, root: str | os.PathLike, *, chunk_size: int = 16384, progress: bool = True):
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1; got {chunk_size}")
        self.root = Path(root)
        self.owner = self.root  # the folder below which no link is followed when writing
        self.chunk_size = chunk_size
        self.progress = progress

    @classmethod
    def for_dataset(cls, dataset_dir: str | os.PathLike, **kwargs: Any) -> TokenCache:
        """The default cache of a dataset folder: ``<dataset_dir>/.cache/tokens``."""
        cache = cls(Path(dataset_dir) / ".cache" / "tokens", **kwargs)
        cache.owner = Path(dataset_dir)  # no link between the dataset folder and what is written
        return cache

    def get(
        self,
        texts: Sequence[str],
        split_name: str,
        source_path: str | os.PathLike | None,
        tokenizer: Any,
        max_length: int,
    ) -> TokenArrays:
        """Token arrays of ``texts``, from the cache when it is fresh, else tokenised now and cached.

        Args:
            texts: the split's texts (a list or a lazy store: only ``len`` and slicing are used).
            split_name: file stem of the split in the cache (``"trn"``, ``"lbl"``...).
            source_path: the text file ``texts`` were read from; the cache is stale when its size or
                modification time changed and its content hash did too. None for texts built in memory:
                then the texts themselves are hashed on every call.
            tokenizer: a Hugging Face tokenizer with a pad token (fast ones are much faster).
            max_length: rows are truncated to this many tokens.
        """
        if not split_name or Path(split_name).name != split_name or split_name.startswith("."):
            raise ConfigError(f"split_name must be a plain file stem such as 'trn'; got {split_name!r}")
        if max_length < 1:
            raise ConfigError(f"max_length must be at least 1; got {max_length}")
        if tokenizer.pad_token_id is None:
            raise ConfigError("the tokenizer has no pad token; give it one (the backbone's spec does) first")
        folder = self.root / cache_key(tokenizer, max_length)
        paths = _Paths(folder, split_name)
        cached = self._load_fresh(paths, texts, source_path, tokenizer, max_length)
        if cached is not None:
            return cached
        return self._build(paths, texts, source_path, tokenizer, max_length)

    # -- reading -------------------------------------------------------------------------------------------
    def _load_fresh(self, paths, texts, source_path, tokenizer, max_length) -> TokenArrays | None:
        if not (paths.meta.exists() and paths.ids.exists() and paths.lengths.exists()):
            return None
        try:
            meta = json.loads(paths.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("token cache %s is unreadable; rebuilding", paths.meta)
            return None
        if not isinstance(meta, dict) or (meta.get("format"), meta.get("version")) != (_FORMAT, _VERSION):
            logger.info("token cache %s has another format; rebuilding", paths.meta)
            return None
        if not isinstance(meta.get("source"), dict):
            logger.warning("token cache %s is unreadable (no source record); rebuilding", paths.meta)
            return None
        if meta.get("n") != len(texts):
            logger.info("token cache %s is stale (its row count changed); rebuilding", paths.meta)
            return None
        if not self._source_unchanged(paths, meta, texts, source_path):
            logger.info("token cache %s is stale (its source changed); rebuilding", paths.meta)
            return None
        try:
            ids = np.load(paths.ids, mmap_mode="r", allow_pickle=False) if meta["n"] else np.load(paths.ids)
            lengths = np.load(paths.lengths, allow_pickle=False)
        except NUMPY_READ_ERRORS as exc:
            logger.warning("token cache %s is unreadable (%s: %s); rebuilding", paths.folder, type(exc).__name__, exc)
            return None
        if ids.shape != (meta["n"], max_length) or ids.dtype != np.int32 or lengths.shape != (meta["n"],):
            logger.warning("token cache %s has arrays of the wrong shape; rebuilding", paths.meta)
            return None
        return TokenArrays(ids, lengths, int(tokenizer.pad_token_id), tokenizer.padding_side)

    def _source_unchanged(self, paths, meta, texts, source_path) -> bool:
        stored = meta.get("source", {})
        if source_path is None:
            return stored.get("texts_hash") == _hash_texts(texts)
        state = _file_state(source_path)
        if stored.get("size") == state["size"] and stored.get("mtime_ns") == state["mtime_ns"]:
            return True
        if stored.get("size") != state["size"] or stored.get("content_hash") != _hash_file(source_path):
            return False
        meta["source"].update(state)  # touched but identical: remember the new time, keep the arrays
        with atomic_open(paths.meta) as fh:
            json.dump(meta, fh, indent=2)
        return True

    # -- writing -------------------------------------------------------------------------------------------
    def _build(self, paths, texts, source_path, tokenizer, max_length) -> TokenArrays:
        from tqdm.auto import tqdm

        n = len(texts)
        if source_path is None:
            source = {"texts_hash": _hash_texts(texts)}
        else:  # stat and hash before reading: an edit made while we tokenise makes the cache stale
            source = {"path": str(Path(source_path).resolve()), **_file_state(source_path)}
            source["content_hash"] = _hash_file(source_path)
        refuse_links(paths.folder, self.owner).mkdir(parents=True, exist_ok=True)
        paths.meta.unlink(missing_ok=True)  # from here on, the old arrays are no longer vouched for
        self._write_identity(paths.folder, tokenizer, max_length)
        logger.info("tokenising %d texts of %r into %s", n, paths.split, paths.folder)
        with (
            atomic_path(paths.ids, suffix=".npy") as ids_tmp,
            atomic_path(paths.lengths, suffix=".npy") as lengths_tmp,
            tqdm(total=n, desc=f"tokenising {paths.split}", unit="text", disable=not self.progress) as bar,
        ):
            lengths = np.zeros(n, dtype=np.int32)
            if n == 0:
                np.save(ids_tmp, np.zeros((0, max_length), dtype=np.int32))
            else:
                ids = np.lib.format.open_memmap(ids_tmp, mode="w+", dtype=np.int32, shape=(n, max_length))
                for start in range(0, n, self.chunk_size):
                    stop = min(start + self.chunk_size, n)
                    ids[start:stop], lengths[start:stop] = _encode_chunk(tokenizer, texts[start:stop], max_length)
                    bar.update(stop - start)
                ids.flush()
                del ids
            np.save(lengths_tmp, lengths)
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "n": n,
            "max_length": int(max_length),
            "pad_id": int(tokenizer.pad_token_id),
            "padding_side": tokenizer.padding_side,
            "source": source,
        }
        with atomic_open(paths.meta) as fh:
            json.dump(meta, fh, indent=2)
        ids_view = np.load(paths.ids, mmap_mode="r") if n else np.load(paths.ids)
        return TokenArrays(ids_view, lengths, int(tokenizer.pad_token_id), tokenizer.padding_side)

    @staticmethod
    def _write_identity(folder: Path, tokenizer: Any, max_length: int) -> None:
        """A human-readable note of what the key folder holds (for whoever lists the cache)."""
        path = folder / "key.json"
        if not path.exists():
            note = {"name_or_path": str(tokenizer.name_or_path), "max_length": int(max_length)}
            note["tokenizer"] = tokenizer_identity(tokenizer)
            with atomic_open(path) as fh:
                json.dump(note, fh, indent=2)


@dataclass(frozen=True)
class _Paths:
    folder: Path
    split: str

    @property
    def ids(self) -> Path:
        return self.folder / f"{self.split}.ids.npy"

    @property
    def lengths(self) -> Path:
        return self.folder / f"{self.split}.lengths.npy"

    @property
    def meta(self) -> Path:
        return self.folder / f"{self.split}.json"


def _encode_chunk(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch call of the tokenizer: (c, max_length) int32 ids padded to max_length, (c,) int32 lengths."""
    encoded = tokenizer(
        list(texts),
        max_length=max_length,
        truncation=True,
        padding="max_length",
        return_attention_mask=True,
        return_token_type_ids=False,
        return_tensors="np",
    )
    ids = np.asarray(encoded["input_ids"], dtype=np.int32)
    lengths = np.asarray(encoded["attention_mask"], dtype=np.int64).sum(axis=1).astype(np.int32)
    return ids, lengths


def _file_state(path: str | os.PathLike) -> dict[str, int]:
    stat = os.stat(path)
    return {"size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}


def _hash_file(path: str | os.PathLike) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _hash_texts(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for start in range(0, len(texts), 65536):
        for text in texts[start : start + 65536]:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=20).hexdigest()
