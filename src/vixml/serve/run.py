"""Running the app under uvicorn: one process (editable), or ``--workers N`` read-only processes."""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import replace

from vixml.serve.settings import SETTINGS_ENV, TOKEN_ENV, ServeSettings

__all__ = ["serve", "quiet_openmp", "require_port_free"]

logger = logging.getLogger(__name__)


def quiet_openmp() -> None:
    """Let torch's OpenMP threads sleep between encoder passes instead of spinning (unless the user chose).

    A server alternates short encoder passes with request handling on the same cores; spinning OpenMP
    threads (libgomp's default) then burn the cores the event loop needs. Measured on 2 cores: 3.5x less
    CPU per query and 3x the throughput (benchmarks/bench_serve.py). Takes effect only if set before torch
    is imported, which is why ``vixml serve`` calls it first; worker processes inherit it.
    """
    import sys

    if "torch" in sys.modules:
        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            logger.info("torch is already loaded: OMP_WAIT_POLICY=PASSIVE would come too late")
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def serve(settings: ServeSettings) -> None:
    """Serve ``settings.run`` until interrupted.

    With one worker the run is loaded here and the overlay's write lock is taken before listening (a second
    editor, server or ``vixml labels``, is refused at once). With more, each uvicorn worker process loads the
    run with memory-mapped label embeddings (one copy in the page cache) and refuses label edits.
    """
    quiet_openmp()
    import uvicorn

    from vixml.inference import Predictor
    from vixml.inference.free_input import TrainingQueries
    from vixml.inference.overlay import LabelOverlay
    from vixml.run_folder import open_run
    from vixml.serve.app import create_app

    settings = replace(settings, run=open_run(settings.run).require_finished().path)  # hub id resolved; exports
    require_port_free(settings.host, settings.port)  # before the model loads, not after
    refusal = settings.edit_refusal()
    if refusal:
        logger.warning("read-only: %s", refusal)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_env()
        if settings.token:
            os.environ[TOKEN_ENV] = settings.token
        uvicorn.run(
            "vixml.serve.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
        )
        return
    lock = None
    if refusal is None:
        lock = LabelOverlay.lock(settings.run, f"vixml serve on {settings.host}:{settings.port}").acquire()
    try:
        predictor = Predictor.load(settings.run, device=settings.device, index=settings.index)
        training = TrainingQueries.from_dataset(predictor, settings.data) if settings.data else None
        app = create_app(predictor, settings, training, edit_lock=lock)
        logger.info(
            "serving %s on http://%s:%d (page at /, API docs at /docs)", settings.run, settings.host, settings.port
        )
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    finally:
        if lock is not None:
            lock.release()


def require_port_free(host: str, port: int) -> None:
    """Refuse (ConfigError, exit 1) an address another process listens on, or one this machine lacks.

    Binds and closes a socket as uvicorn will (SO_REUSEADDR, so a port in TIME_WAIT still counts as free).
    """
    from vixml.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use (another vixml serve, or another server): stop it, "
                    "or choose another port with --port"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
