"""A local HTTP server of test images on 127.0.0.1 (ephemeral port), and the images it serves.

Routes are ``path -> Route``; a route answers with fixed bytes, a status code, a number of failures
before success, a delay, a redirect, or headers trickled one byte at a time (a hostile server). The
server counts hits per path and clients that hung up on a trickle (thread-safe), runs in a daemon thread,
and shuts itself down after ``lifetime`` seconds even if a test forgets to, so a broken test cannot hang.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Route", "ImageServer", "png", "jpeg", "rgba_png", "palette_png"]


def _image(width: int, height: int, color, mode: str = "RGB"):
    from PIL import Image

    return Image.new(mode, (width, height), color)


def _save(image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def png(width: int = 40, height: int = 40, color=(200, 30, 30)) -> bytes:
    """A solid RGB PNG."""
    return _save(_image(width, height, color), "PNG")


def jpeg(width: int = 40, height: int = 40, color=(30, 30, 200)) -> bytes:
    """A solid RGB JPEG."""
    return _save(_image(width, height, color), "JPEG", quality=95)


def rgba_png(width: int = 40, height: int = 40, color=(0, 160, 0)) -> bytes:
    """A PNG whose left half is transparent (must become white) and right half opaque ``color``."""
    image = _image(width, height, (*color, 0), "RGBA")
    image.paste(_image(width - width // 2, height, (*color, 255), "RGBA"), (width // 2, 0))
    return _save(image, "PNG")


def palette_png(width: int = 40, height: int = 40) -> bytes:
    """A palette ("P") PNG with a transparent colour index filling its top half."""
    from PIL import Image

    image = Image.new("P", (width, height), 1)
    image.putpalette([0, 0, 0, 250, 200, 0] + [0] * (254 * 3))
    image.paste(0, (0, 0, width, height // 2))
    return _save(image, "PNG", transparency=0)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections (1 s SYN retries) under 16 concurrent clients
    daemon_threads = True
    block_on_close = False


@dataclass
class Route:
    """How one path answers.

    Attributes:
        body: the bytes of a successful answer.
        status: the status of a final answer (200 with ``body``, or an error without one).
        fail_first: answer 500 this many times before answering normally.
        delay: seconds to wait before answering (a slow server, to trigger timeouts).
        content_type: the answer's Content-Type.
        length: a Content-Length to announce instead of the true one (None: the true one).
        redirect: answer 302 with this Location instead.
        trickle: send the status line, then one byte of a header every ``trickle`` seconds for
            ``trickle_for`` seconds (0: off), then the rest of the answer.
    """

    body: bytes = b""
    status: int = 200
    fail_first: int = 0
    delay: float = 0.0
    content_type: str = "image/png"
    length: int | None = None
    redirect: str | None = None
    trickle: float = 0.0
    trickle_for: float = 20.0


class ImageServer:
    """``with ImageServer(routes) as server: server.url("/a.png")``; ``server.hits["/a.png"]``."""

    def __init__(self, routes: dict[str, Route], lifetime: float = 60.0, delay_all: float = 0.0):
        self.routes = dict(routes)
        self.hits: dict[str, int] = {}
        self.hung_up: dict[str, int] = {}  # path -> clients that closed the connection during a trickle
        self.delay_all = delay_all
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                with server._lock:
                    hit = server.hits.get(path, 0)
                    server.hits[path] = hit + 1
                route = server.routes.get(path)
                if server.delay_all:
                    time.sleep(server.delay_all)
                if route is None:
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                if hit < route.fail_first:
                    self.send_error(500)
                    return
                if route.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.trickle:
                    self._trickle(path, route)
                    return
                if route.status != 200:
                    self.send_error(route.status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(route.length if route.length is not None else len(route.body)))
                self.end_headers()
                try:
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size cap)

            def _trickle(self, path: str, route: Route) -> None:
                end = time.monotonic() + route.trickle_for
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow-")
                    while time.monotonic() < end:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(route.trickle)
                    self.wfile.write(f": 1\r\nContent-Length: {len(route.body)}\r\n\r\n".encode() + route.body)
                except (BrokenPipeError, ConnectionResetError):
                    with server._lock:
                        server.hung_up[path] = server.hung_up.get(path, 0) + 1

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def total_hits(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def start(self) -> ImageServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
