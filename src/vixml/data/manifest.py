"""``dataset.json``: the manifest written last by ``prepare``, so a half-written folder never looks complete.

It records the counts, the vixml version, the source and a fingerprint of the data files. The
fingerprint keys caches (tokenised texts, label embeddings) to the exact data they came from: it hashes
each file's name, size and content (whole content up to 1 GiB; beyond that, 64 evenly spaced 1 MiB
blocks including the head and tail, which catches truncation and most edits of embedding banks).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from vixml.atomic import atomic_open
from vixml.data.layout import MANIFEST_NAME, dataset_files
from vixml.errors import Problem

__all__ = ["FORMAT_VERSION", "file_digest", "fingerprint", "write_manifest", "read_manifest", "manifest_problems"]

FORMAT_VERSION = 1
_FULL_HASH_LIMIT = 1 << 30
_BLOCK = 1 << 20
_SAMPLES = 64


def file_digest(path: str | os.PathLike) -> str:
    """Hex digest of a file's content (sampled beyond 1 GiB, see the module docstring)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
        else:
            step = (size - _BLOCK) // (_SAMPLES - 1)
            for k in range(_SAMPLES):
                fh.seek(k * step)
                h.update(fh.read(_BLOCK))
    return h.hexdigest()


def fingerprint(directory: str | os.PathLike, digests: dict[str, str] | None = None) -> str:
    """Fingerprint of a folder's data files: a hash over their names, sizes and content digests."""
    h = hashlib.sha256()
    for path in dataset_files(directory):
        digest = digests[path.name] if digests and path.name in digests else file_digest(path)
        h.update(f"{path.name}\0{path.stat().st_size}\0{digest}\n".encode())
    return h.hexdigest()


_REWRITTEN = ("format", "format_version", "vixml_version", "created", "source", "counts", "files", "fingerprint")


def write_manifest(directory: str | os.PathLike, *, source: dict, counts: dict, extra: dict | None = None) -> dict:
    """Write ``dataset.json`` (atomically) describing the folder's current data files; returns it."""
    from vixml import __version__

    directory = Path(directory)
    files = {p.name: {"size": p.stat().st_size, "digest": file_digest(p)} for p in dataset_files(directory)}
    manifest = {
        "format": "vixml-dataset",
        "format_version": FORMAT_VERSION,
        "vixml_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "counts": counts,
        "files": files,
        "fingerprint": fingerprint(directory, {name: f["digest"] for name, f in files.items()}),
        **(extra or {}),
    }
    with atomic_open(directory / MANIFEST_NAME, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
    return manifest


def refresh_manifest(directory: str | os.PathLike) -> dict | None:
    """Re-describe the folder's files in its existing ``dataset.json`` (after image banks or embeddings were
    added or replaced), keeping its source, counts and other keys; a folder without a manifest is left alone."""
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    kept = {k: v for k, v in manifest.items() if k not in _REWRITTEN}
    return write_manifest(directory, source=manifest.get("source", {}), counts=manifest.get("counts", {}), extra=kept)


def read_manifest(directory: str | os.PathLike) -> dict | None:
    """The manifest, or None when the folder has none (a public folder, or an unfinished prepare)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def manifest_problems(directory: str | os.PathLike) -> list[Problem]:
    """Cheap consistency of the manifest with the folder: readable, every listed file present with its size."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError) as exc:
        return [Problem(str(path), f"unreadable manifest: {exc}")]
    problems = []
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return [Problem(str(path), "manifest without a 'files' table", field="files")]
    for name, info in files.items():
        target = directory / name
        if not target.is_file():
            problems.append(Problem(str(path), f"{name} is listed but missing", field="files"))
        elif isinstance(info, dict) and info.get("size") != target.stat().st_size:
            problems.append(
                Problem(str(target), f"size {target.stat().st_size} differs from the manifest's {info.get('size')}")
            )
    return problems
