"""The bytes behind an image reference: HTTP(S) with time limits, retries and a size cap; files; data URIs.

A reference is an ``http(s)://`` URL, a ``file://`` URL, a ``data:`` URI or a local path. Every way it can
fail ends in a :class:`FetchFailure` with a short ``reason`` that reports can count on:

=================  ==========================================================  ===========
reason             meaning                                                     retried
=================  ==========================================================  ===========
``http_<code>``    the server answered with that status (``http_404``, ...)    5xx, 408, 429
``timeout``        no complete answer within ``timeout`` seconds               yes
``connection``     refused, reset, DNS failure, broken HTTP                    yes
``too_large``      more than ``max_bytes`` (announced or read)                 no
``not_found``      a local file that does not exist                            no
``bad_url``        an unsupported scheme or a malformed reference              no
``bad_redirect``   a redirect to anything but an http(s) URL                   no
=================  ==========================================================  ===========

``timeout`` is a **total deadline per attempt**: connecting, the status line and headers, and the body
must all arrive within ``timeout`` seconds. A watchdog shuts the connection's socket when the time is
up, so a server that trickles its headers one byte at a time cannot hold a worker (a per-read socket
timeout would never fire there). Name resolution (DNS) is not covered by the deadline.

Retries wait ``backoff * 2**attempt`` seconds, jittered by a factor in [0.5, 1] so that many threads
hitting one host do not retry in lockstep; a ``Retry-After`` header (seconds) is honoured up to 30 s.
The standard library's ``urllib`` does the HTTP: no extra dependency, proxies from the environment,
redirects followed to http/https URLs only (never to ``file:``, ``ftp:`` or a ``data:`` URI).
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vixml import __version__
from vixml.errors import ConfigError

__all__ = ["DownloadPolicy", "FetchFailure", "read_reference", "is_remote"]

_CHUNK = 1 << 16
_RETRY_AFTER_CAP = 30.0
_TRANSIENT_STATUS = {408, 425, 429}


class FetchFailure(Exception):
    """An image reference that gave no bytes.

    Attributes:
        reason: a short code from the table in the module docstring (``http_404``, ``timeout``, ...).
        detail: a human-readable explanation.
        transient: whether trying again later may succeed (what retries are spent on).
    """

    def __init__(self, reason: str, detail: str = "", transient: bool = False, retry_after: float | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True)
class DownloadPolicy:
    """How patiently to read one reference.

    Attributes:
        timeout: seconds allowed for one attempt, connection, headers and whole body included (a
            deadline: a server dripping bytes is cut when it passes, see the module docstring).
        retries: further attempts after a transient failure (0: a single attempt).
        backoff: seconds before the first retry; doubled for each further one.
        max_bytes: refuse bodies (and files) larger than this many bytes.
        user_agent: sent with every HTTP request; some image hosts refuse Python's default.
    """

    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_bytes: int = 10_000_000
    user_agent: str = f"vixml/{__version__} (image fetch; +https://github.com/vixml)"

    def __post_init__(self) -> None:
        problems = []
        if not self.timeout > 0:
            problems.append(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            problems.append(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0:
            problems.append(f"backoff must be >= 0 seconds, got {self.backoff}")
        if self.max_bytes < 1:
            problems.append(f"max_bytes must be >= 1, got {self.max_bytes}")
        if problems:
            raise ConfigError("; ".join(problems))


def is_remote(ref: str) -> bool:
    """Whether a reference is fetched over HTTP(S)."""
    return ref[:8].lower().startswith(("http://", "https://"))


def read_reference(ref: str, policy: DownloadPolicy | None = None) -> bytes:
    """The bytes of an image reference (URL, ``file://`` URL, ``data:`` URI or local path).

    Raises:
        FetchFailure: when no bytes could be had, after the retries a transient failure allows.
    """
    policy = policy or DownloadPolicy()
    ref = ref.strip()
    if is_remote(ref):
        return _http_with_retries(ref, policy)
    if ref[:5].lower() == "data:":
        return _data_uri(ref, policy.max_bytes)
    if ref[:7].lower() == "file://":
        return _local_file(urllib.request.url2pathname(urllib.parse.urlparse(ref).path), policy.max_bytes)
    if "://" in ref or not ref:
        raise FetchFailure("bad_url", f"unsupported reference {ref[:80]!r} (http, https, file, data or a path)")
    return _local_file(ref, policy.max_bytes)


def _http_with_retries(url: str, policy: DownloadPolicy) -> bytes:
    attempt = 0
    while True:
        try:
            return _http_once(url, policy)
        except FetchFailure as failure:
            if not failure.transient or attempt >= policy.retries:
                raise
            delay = policy.backoff * (2**attempt) * random.uniform(0.5, 1.0)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, _RETRY_AFTER_CAP))
            time.sleep(delay)
            attempt += 1


class _Deadline:
    """Shuts the sockets of one download when its time is up, whatever read they are blocked in."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.001)

    def watch(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut(connection)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:
        return
    try:  # the plain socket method: on an SSL socket it cuts the transport without touching the TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    class Watched(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, deadline: _Deadline, **kwargs):
            super().__init__(*args, **kwargs)
            self._deadline = deadline

        def connect(self) -> None:
            self.timeout = min(self.timeout or self._deadline.seconds, self._deadline.remaining())
            super().connect()
            self._deadline.watch(self)

    Watched.__name__ = f"Watched{base.__name__}"
    return Watched


_WatchedHTTP = _watched(http.client.HTTPConnection)
_WatchedHTTPS = _watched(http.client.HTTPSConnection)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTP, deadline=self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPS, deadline=self.deadline), req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only: a hostile server cannot send a fetch to a file or an FTP host."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri") or ""
        target = urllib.parse.urljoin(req.full_url, location)
        if urllib.parse.urlparse(target).scheme.lower() not in ("http", "https"):
            fp.close()
            raise FetchFailure("bad_redirect", f"redirect ({code}) to {target[:80]!r}: only http(s) is followed")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _http_once(url: str, policy: DownloadPolicy) -> bytes:
    """One GET: the whole answer within ``policy.timeout`` seconds (a deadline) and ``policy.max_bytes`` bytes."""
    deadline = _Deadline(policy.timeout)
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline), _RedirectHandler())
    request = urllib.request.Request(url, headers={"User-Agent": policy.user_agent, "Accept": "image/*,*/*;q=0.5"})
    try:
        return _read_answer(opener, request, policy, deadline)
    except FetchFailure:
        raise
    except Exception:  # noqa: BLE001 - whatever a cut connection raised, past the deadline it is a timeout
        if deadline.expired:
            raise FetchFailure("timeout", f"no complete answer within {policy.timeout:g} s", transient=True) from None
        raise
    finally:
        deadline.cancel()


def _read_answer(opener, request, policy: DownloadPolicy, deadline: _Deadline) -> bytes:
    try:
        with opener.open(request, timeout=policy.timeout) as response:
            announced = response.headers.get("Content-Length")
            if announced and announced.strip().isdigit() and int(announced) > policy.max_bytes:
                raise FetchFailure("too_large", f"Content-Length {int(announced)} > max_bytes {policy.max_bytes}")
            chunks, total = [], 0
            while chunk := response.read1(_CHUNK):
                total += len(chunk)
                if total > policy.max_bytes:
                    raise FetchFailure("too_large", f"body larger than max_bytes {policy.max_bytes}")
                chunks.append(chunk)
            if deadline.expired:
                raise FetchFailure("timeout", f"no complete answer within {policy.timeout:g} s", transient=True)
            return b"".join(chunks)
    except FetchFailure:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        if deadline.expired:
            raise
        transient = exc.code >= 500 or exc.code in _TRANSIENT_STATUS
        raise FetchFailure(
            f"http_{exc.code}", str(exc.reason), transient=transient, retry_after=_retry_after(exc.headers)
        ) from None
    except urllib.error.URLError as exc:
        if deadline.expired:
            raise
        if isinstance(exc.reason, FetchFailure):
            raise exc.reason from None
        if isinstance(exc.reason, TimeoutError):
            raise FetchFailure("timeout", f"no answer within {policy.timeout:g} s", transient=True) from None
        if isinstance(exc.reason, str) and "unknown url type" in exc.reason:
            raise FetchFailure("bad_url", exc.reason) from None
        raise FetchFailure("connection", str(exc.reason), transient=True) from None
    except TimeoutError:
        raise FetchFailure("timeout", f"no answer within {policy.timeout:g} s", transient=True) from None
    except ValueError as exc:  # a malformed URL (bad port, control characters)
        if deadline.expired:
            raise
        raise FetchFailure("bad_url", str(exc)) from None
    except (http.client.HTTPException, OSError) as exc:
        if deadline.expired:
            raise
        raise FetchFailure("connection", f"{type(exc).__name__}: {exc}", transient=True) from None


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the exponential back-off


def _data_uri(ref: str, max_bytes: int) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep:
        raise FetchFailure("bad_url", "a data: URI needs a ',' before its payload")
    try:
        if header.lower().endswith(";base64"):
            data = base64.b64decode(payload, validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise FetchFailure("bad_url", f"undecodable data: URI: {exc}") from None
    if len(data) > max_bytes:
        raise FetchFailure("too_large", f"{len(data)} bytes > max_bytes {max_bytes}")
    return data


def _local_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise FetchFailure("not_found", f"{path} is not a file")
        if size > max_bytes:
            raise FetchFailure("too_large", f"{size} bytes > max_bytes {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise FetchFailure("not_found", f"no file {path}") from None
    except OSError as exc:
        raise FetchFailure("not_found", f"cannot read {path}: {exc.strerror or exc}") from None
