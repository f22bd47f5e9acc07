"""Copying data files into a dataset folder atomically, and bringing image files along."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from vixml.atomic import atomic_path
from vixml.data.image_maps import convert_image_map
from vixml.data.images import discover_image_files

__all__ = ["copy_file", "copy_image_files"]

logger = logging.getLogger(__name__)


def copy_file(src: Path, dst: Path, *, link: bool = False) -> None:
    """Copy ``src`` to ``dst`` atomically; with ``link``, hard-link instead when the file system allows."""
    if src.resolve() == dst.resolve():
        return
    if link:
        tmp = dst.with_name(f".{dst.name}.link")
        try:
            if tmp.exists():
                tmp.unlink()
            os.link(src, tmp)
            os.replace(tmp, dst)
            return
        except OSError:
            logger.debug("cannot hard-link %s; copying", src)
    with atomic_path(dst, size_hint=src.stat().st_size) as tmp_path:
        shutil.copyfile(src, tmp_path)


def copy_image_files(src: Path, out: Path, *, trust_pickle: bool, link: bool = False) -> list[str]:
    """Bring a folder's image files into ``out``: embeddings, maps (converted when pickled), JPEG banks.

    A pickled map is converted only with ``trust_pickle``; without it, that split's embeddings and map
    are left out (a warning is logged and the note returned) so the rest of the dataset still prepares.

    Returns:
        Notes on what was skipped, for the manifest.
    """
    skipped = []
    for split, files in discover_image_files(src).items():
        if files.bank is not None:
            copy_file(files.bank, out / files.bank.name, link=link)
        if files.map_npz is not None:
            copy_file(files.map_npz, out / files.map_npz.name, link=link)
        elif files.map_npy is not None:
            if not trust_pickle:
                note = f"{split}: pickled image map {files.map_npy.name} not converted (pass --trust-pickle)"
                logger.warning("skipping image files of split %s: %s", split, note)
                skipped.append(note)
                continue
            convert_image_map(files.map_npy, out / files.map_npy.with_suffix(".npz").name, trust_pickle=True)
        for embeddings in sorted(src.glob(f"{split}_embs_imgs_*.npy")):  # every model's embeddings
            copy_file(embeddings, out / embeddings.name, link=link)
    return skipped
