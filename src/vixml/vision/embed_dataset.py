"""A dataset folder's image banks -> its embedding files and maps, as the released layout names them.

For each split with a bank ``{train,test,labels}_imgs_<size>_<N>.bin`` this writes
``{trn,tst,lbl}_embs_imgs_<N>_<D>_<tag>.npy`` (row r = bank line r) and makes sure the pickle-free map
``{train,test,labels}_imgs_<size>_<N>_map.npz`` sits beside it (copied, or converted once from a released
pickled ``.npy`` on explicit trust), so :func:`vixml.data.discover_image_files` and
:class:`vixml.data.ImageBank` find and read the pair. Maps are checked before any image is embedded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vixml.atomic import atomic_path
from vixml.data.image_maps import ImageMap, convert_image_map, read_image_map
from vixml.data.images import MAP_SPLIT_NAMES, SPLITS
from vixml.data.manifest import refresh_manifest
from vixml.errors import ConfigError, DataError, Problem
from vixml.locking import WriteLock
from vixml.vision.embed import BadImages, EmbedResult, embed_bank
from vixml.vision.models import DEFAULT_VISION_MODEL, VisionEncoder, check_model_source, load_vision_model

__all__ = ["BankFile", "default_tag", "embed_dataset", "embedding_name", "find_banks"]

logger = logging.getLogger(__name__)

_BANK = re.compile(r"^(train|test|labels)_imgs_(\d+)_(\d+)\.bin$")
_SPLIT_OF = {v: k for k, v in MAP_SPLIT_NAMES.items()}


@dataclass(frozen=True)
class BankFile:
    """One image bank of a dataset folder.

    Attributes:
        split: ``trn``, ``tst`` or ``lbl``.
        path: the ``.bin`` file.
        image_size: ``<size>`` of its name (the thumbnail size the images were made at).
        num_images: ``<N>`` of its name (image slots per item).
    """

    split: str
    path: Path
    image_size: int
    num_images: int

    def map_path(self, suffix: str = ".npz") -> Path:
        """``<bank stem>_map.npz`` (or ``.npy``, the released pickled map) beside the bank."""
        return self.path.with_name(f"{self.path.stem}_map{suffix}")


def find_banks(
    directory: str | os.PathLike, *, num_images: int | None = None, image_size: int | None = None
) -> dict[str, BankFile]:
    """The image bank of each split in ``directory``, keeping those of ``num_images`` / ``image_size`` if given.

    Raises:
        ConfigError: a split has several matching banks (name them with ``num_images`` / ``image_size``).
    """
    found: dict[str, list[BankFile]] = {}
    for path in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else []:
        if (m := _BANK.match(path.name)) and path.is_file():
            bank = BankFile(_SPLIT_OF[m.group(1)], path, int(m.group(2)), int(m.group(3)))
            if (num_images is None or bank.num_images == num_images) and (
                image_size is None or bank.image_size == image_size
            ):
                found.setdefault(bank.split, []).append(bank)
    several = {split: banks for split, banks in found.items() if len(banks) > 1}
    if several:
        names = "; ".join(f"{s}: {', '.join(b.path.name for b in banks)}" for s, banks in several.items())
        raise ConfigError(f"several image banks per split ({names}): choose with --num-images / --image-size")
    return {split: found[split][0] for split in SPLITS if split in found}


def default_tag(name_or_path: str) -> str:
    """File-name tag of a model: the last part of its name or folder, lower-case, ``[a-z0-9.-]`` only."""
    tag = re.sub(r"[^a-z0-9.-]+", "-", Path(name_or_path.rstrip("/\\")).name.lower()).strip("-.")
    return tag or "model"


def embedding_name(split: str, num_images: int, dim: int, tag: str) -> str:
    """``{trn,tst,lbl}_embs_imgs_<N>_<D>_<tag>.npy``, the released embedding-file name."""
    return f"{split}_embs_imgs_{num_images}_{dim}_{tag}.npy"


def _check_tag(tag: str) -> str:
    if not tag or not re.fullmatch(r"[A-Za-z0-9._-]+", tag):
        raise ConfigError(f"tag {tag!r} must be non-empty and use only letters, digits, '.', '_' and '-'")
    return tag


def _place_map(bank: BankFile, out_dir: Path, trust_pickle: bool) -> tuple[Path, ImageMap]:
    """Read (or convert) the bank's map and make sure it is in ``out_dir``; returns its path there and the map."""
    npz, npy = bank.map_path(".npz"), bank.map_path(".npy")
    dst = out_dir / npz.name
    if npz.is_file():
        image_map = read_image_map(npz)
        if dst.resolve() != npz.resolve():
            with atomic_path(dst, suffix=".npz") as tmp:
                shutil.copyfile(npz, tmp)
        return dst, image_map
    if npy.is_file():
        return dst, convert_image_map(npy, dst, trust_pickle=trust_pickle)
    raise DataError(
        Problem(
            str(bank.path),
            f"no map for this bank: expected {npz.name} (pickle-free) or {npy.name} (released) beside it; "
            "the map says which bank rows belong to which item",
        )
    )


def embed_dataset(
    directory: str | os.PathLike,
    model: VisionEncoder | str = DEFAULT_VISION_MODEL,
    *,
    splits: Sequence[str] | str = "all",
    num_images: int | None = None,
    image_size: int | None = None,
    out_dir: str | os.PathLike | None = None,
    tag: str | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    precision: str = "auto",
    chunk_rows: int = 8192,
    bad_images: BadImages = "error",
    trust_pickle: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> list[EmbedResult]:
    """Embed the image banks of a dataset folder with one vision model (``vixml images embed``).

    Args:
        directory: the dataset folder holding ``{train,test,labels}_imgs_<size>_<N>.bin`` and their maps.
        model: a hub name or local folder (default: the paper's SigLIP2), or a loaded :class:`VisionEncoder`.
        splits: ``"all"`` (every split with a bank), one of ``trn`` / ``tst`` / ``lbl``, or several.
        num_images: use the banks of this N (needed only when a split has banks of several N).
        image_size: use the banks of this image size (idem).
        out_dir: where to write (default: ``directory``); the maps are copied there.
        tag: the ``<model>`` part of the file names (default: from the model's name).
        batch_size, workers, chunk_rows, bad_images, overwrite, progress, on_chunk: see
            :func:`vixml.vision.embed.embed_bank`.
        device: ``auto``, ``cpu``, ``cuda``, ... (when ``model`` is a name).
        precision: ``auto`` (bf16 where native, else fp16 on GPU and fp32 on CPU), ``fp32``, ``fp16``, ``bf16``
            (when ``model`` is a name).
        trust_pickle: allow converting a released pickled map (unpickling runs code from the file).

    Returns:
        One :class:`EmbedResult` per split, in ``trn, tst, lbl`` order.

    Raises:
        DataError: no bank for a requested split, a missing or broken map, a map pointing past the bank's
            rows, undecodable images (with ``bad_images="error"``), an ``out_dir`` that is a file.
        ConfigError: ambiguous banks, a bad tag or split name, a model that cannot be loaded (a model path
            that does not exist is refused before anything is written).
        LockedError: another process is writing ``out_dir`` (an embed, a fetch, a prepare).
    """
    directory = Path(directory)
    out = Path(out_dir) if out_dir is not None else directory
    for folder, what in ((directory, "dataset folder"), (out, "output folder")):
        if folder.exists() and not folder.is_dir():
            raise DataError(Problem(str(folder), f"is a file, not a {what}"))
    wanted = list(SPLITS) if splits == "all" else [splits] if isinstance(splits, str) else list(splits)
    if unknown := [s for s in wanted if s not in SPLITS]:
        raise ConfigError(f"unknown split(s) {unknown}: use {', '.join(SPLITS)} or all")
    if tag is not None:
        _check_tag(tag)
    if not isinstance(model, VisionEncoder):
        check_model_source(model)  # before anything is written
    banks = find_banks(directory, num_images=num_images, image_size=image_size)
    missing = [s for s in wanted if s not in banks]
    if (splits != "all" and missing) or not banks:
        have = ", ".join(b.path.name for b in banks.values()) or "none"
        raise DataError(
            Problem(
                str(directory),
                f"no image bank {{train,test,labels}}_imgs_<size>_<N>.bin for split(s) {missing}"
                + (f" with N={num_images}" if num_images else "")
                + f" (found: {have})",
            )
        )
    chosen = [banks[s] for s in wanted if s in banks]
    settings = {
        "batch_size": batch_size,
        "workers": workers,
        "chunk_rows": chunk_rows,
        "bad_images": bad_images,
        "overwrite": overwrite,
        "progress": progress,
        "on_chunk": on_chunk,
    }
    with WriteLock(out, "vixml images embed"):
        maps = {bank.split: _place_map(bank, out, trust_pickle) for bank in chosen}
        encoder = model if isinstance(model, VisionEncoder) else load_vision_model(model, device, precision)
        return _embed(chosen, maps, out, encoder, tag, settings)


def _embed(chosen, maps, out: Path, encoder: VisionEncoder, tag: str | None, settings: dict) -> list[EmbedResult]:
    """Embed each chosen bank into ``out`` (locked by the caller) and refresh its manifest."""
    tag = tag if tag is not None else default_tag(encoder.name_or_path)
    results = []
    for bank in chosen:
        map_path, image_map = maps[bank.split]
        target = out / embedding_name(bank.split, bank.num_images, encoder.dim, tag)
        logger.info("embedding %s -> %s", bank.path.name, target.name)
        result = embed_bank(encoder, bank.path, target, **settings)
        problems = image_map.problems(str(map_path), n_embeddings=result.n_images)
        if problems:
            raise DataError(problems + [Problem(str(bank.path), f"the bank has {result.n_images} line(s)")])
        results.append(
            dataclasses.replace(result, split=bank.split, map=map_path, num_images=bank.num_images, tag=tag)
        )
    refresh_manifest(out)  # its dataset.json (if any) now describes the new embedding files
    return results
