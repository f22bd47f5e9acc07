"""Images sent to the server: base64 text or uploaded bytes -> PIL images, within the limits, never a path.

A request's image is data, not a reference: the server never opens a file or URL that a request names.
Only PNG, JPEG, WebP and GIF bytes are accepted (checked by their signature, then decoded by Pillow).
"""

from __future__ import annotations

import base64
import binascii
import io

from vixml.serve.errors import RequestError

__all__ = ["decode_image", "decode_base64_image", "IMAGE_TYPES", "PixelBudget"]

IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}


def _kind(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in IMAGE_TYPES.items() if data.startswith(magic)), None)


class PixelBudget:
    """The pixels one request may still decode: each image is bounded alone and all of them together, from
    their headers, before any is decoded (a small PNG can decode to gigabytes)."""

    def __init__(self, per_image: int, per_request: int):
        self.per_image, self.left, self.per_request = per_image, per_request, per_request

    def take(self, width: int, height: int, loc: list) -> None:
        pixels = width * height
        if pixels > self.per_image:
            raise RequestError(413, loc, f"image of {width}x{height} = {pixels:,} pixels; at most {self.per_image:,}")
        if pixels > self.left:
            raise RequestError(413, loc, f"the request's images add up to over {self.per_request:,} pixels")
        self.left -= pixels


def decode_base64_image(text: str, loc: list, max_bytes: int, budget: PixelBudget | None = None):
    """A base64 image (optionally a ``data:image/...;base64,`` URI) -> an RGB PIL image."""
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            raise RequestError(422, loc, "a data: URI image must be base64 (data:image/png;base64,...)")
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise RequestError(413, loc, f"image larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            422, loc, "not base64: send the image's bytes as base64 (paths and URLs are never read)"
        ) from None
    return decode_image(data, loc, max_bytes, budget)


def decode_image(data: bytes, loc: list, max_bytes: int, budget: PixelBudget | None = None):
    """Image bytes -> an RGB PIL image, or a RequestError naming ``loc``; its pixels taken from ``budget``."""
    from vixml.optional import require

    if len(data) > max_bytes:
        raise RequestError(413, loc, f"image of {len(data)} bytes; at most {max_bytes}")
    kind = _kind(data)
    if kind is None:
        raise RequestError(415, loc, "unsupported image type: send PNG, JPEG, WebP or GIF bytes")
    image_module = require("PIL.Image", "vision")
    try:
        image = image_module.open(io.BytesIO(data))  # reads the header only
        if budget is not None:
            budget.take(*image.size, loc)
        image.load()
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        raise RequestError(422, loc, f"unreadable {kind} image: {exc}") from None
    return image.convert("RGB")
