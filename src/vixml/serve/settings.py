"""What a server is allowed to do: where it binds, who may edit labels, and the bounds of every request."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from vixml.errors import ConfigError

__all__ = ["Limits", "ServeSettings", "TOKEN_ENV", "is_loopback"]

TOKEN_ENV = "VIXML_SERVE_TOKEN"
SETTINGS_ENV = "VIXML_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


@dataclass(frozen=True)
class Limits:
    """Bounds of one request; a request beyond any of them gets a 4xx naming the field."""

    max_queries: int = 64  # queries in one /predict request
    max_text_chars: int = 2000  # characters of one query or label text
    max_k: int = 100  # labels returned per query
    max_images: int = 3  # images per query or label (also bounded by the run's images.num_images)
    max_image_bytes: int = 4 << 20  # bytes of one decoded image
    max_body_bytes: int = 16 << 20  # bytes of one request body
    max_new_labels: int = 1000  # labels in one POST /labels
    max_image_pixels: int = 25_000_000  # pixels of one image, checked from its header before it is decoded
    max_request_pixels: int = 100_000_000  # pixels of all the images of one request

    def __post_init__(self) -> None:
        bad = [f"{name} must be >= 1, got {value}" for name, value in asdict(self).items() if value < 1]
        if bad:
            raise ValueError("; ".join(bad))


@dataclass(frozen=True)
class ServeSettings:
    """Settings of ``vixml serve``.

    Attributes:
        run: the run folder.
        host, port: where to listen (default loopback only).
        workers: server processes; more than one serves read-only (label edits are refused).
        token: required (``Authorization: Bearer TOKEN``) by label edits when set; a server bound beyond
            loopback without one refuses edits.
        data: the run's dataset folder, for retrieval-augmented scoring (``augment``); None = unavailable.
        device: where the model runs.
        batch_window_ms: how long a batch waits for more queries after its first one.
        max_batch: queries per encoder pass.
        limits: request bounds.
        index: ``exact`` or ``hnsw`` (see :meth:`vixml.inference.Predictor.load`).
    """

    run: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    data: Path | None = None
    device: str = "auto"
    batch_window_ms: float = 2.0
    max_batch: int = 64
    limits: Limits = field(default_factory=Limits)
    index: str = "exact"  # the label search: exact, or hnsw (an hnswlib graph built at start)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
        if self.workers < 1 or self.max_batch < 1 or self.batch_window_ms < 0:
            raise ConfigError("workers and max_batch must be >= 1 and batch_window_ms >= 0")

    @property
    def editable(self) -> bool:
        """Whether label edits are possible at all (one worker; a token when reachable from elsewhere)."""
        return self.workers == 1 and (self.token is not None or is_loopback(self.host))

    def edit_refusal(self) -> str | None:
        """Why edits are refused, or None."""
        if self.workers > 1:
            return (
                f"label edits are refused with --workers {self.workers}: each worker holds its own copy of the "
                "labels; serve with --workers 1 to edit, or use `vixml labels add` and restart"
            )
        if self.token is None and not is_loopback(self.host):
            return (
                f"label edits need a token when the server binds beyond loopback ({self.host}): "
                f"--token or ${TOKEN_ENV}"
            )
        return None

    def to_env(self) -> str:
        data = asdict(self)
        data["run"], data["data"] = str(self.run), None if self.data is None else str(self.data)
        data["token"] = None  # the token travels in its own environment variable, never in this one
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> ServeSettings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise ConfigError(f"${SETTINGS_ENV} is not set: start workers through `vixml serve`")
        data = json.loads(raw)
        data["limits"] = Limits(**data["limits"])
        data["token"] = os.environ.get(TOKEN_ENV) or None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
