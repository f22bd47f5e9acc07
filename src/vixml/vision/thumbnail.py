"""Image bytes -> the square, white-padded JPEG thumbnails of an image bank (one base64 line per image).

ViXML (paper, section 3) encodes every image at 384x384 with white padding: the image is scaled to fit
the square keeping its aspect ratio, centred, and the margins are white. Transparent pixels are
composited on white too, so a logo on a transparent background looks the same as on a white page.
Banks store each thumbnail as one base64 JPEG line (``{train,test,labels}_imgs_<size>_<N>.bin``).

PIL (extra ``vision``) is imported when first needed, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import TYPE_CHECKING

from vixml.optional import require

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "NotAnImageError",
    "ImageTooLargeError",
    "decode_image",
    "thumbnail",
    "encode_jpeg",
    "thumbnail_line",
    "decode_bank_line",
    "DEFAULT_MAX_PIXELS",
]

DEFAULT_MAX_PIXELS = 64_000_000  # 8000x8000; PIL's own bomb limit is ~89M and doubles as an error at ~179M
WHITE = (255, 255, 255)
_ORIENTATION = 0x0112  # the EXIF tag of a photo's rotation
_DRAFT_GAP = 2  # JPEG draft decoding keeps at least this multiple of the thumbnail's size


class NotAnImageError(ValueError):
    """The bytes are not an image PIL can decode (HTML error page, truncated file, unknown format)."""


class ImageTooLargeError(ValueError):
    """The image has more pixels than allowed (a decompression bomb or a poster-sized scan)."""


def _pil():
    return require("PIL.Image", "vision")


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> PILImage.Image:
    """Decode image bytes fully, checking the pixel count before the pixels are decoded.

    Args:
        data: the encoded file (JPEG, PNG, WebP, GIF, BMP, TIFF, ... whatever PIL reads).
        max_pixels: refuse images with more pixels (width * height) than this; the header is read first,
            so a small file that would decompress into gigabytes is refused before it does.
        draft_size: the side of the square thumbnail that will be made from the image: the JPEG decoder
            may then scale down by a power of two (``Image.draft``, DCT scaling) while keeping at least twice
            the thumbnail's size on both sides, as ``PIL.Image.thumbnail`` does; a 4000x3000 photo decodes
            several times faster when a 384 thumbnail is all that is wanted. Other formats ignore it.

    Returns:
        The decoded image, EXIF orientation applied (phone photos come upright).

    Raises:
        NotAnImageError: undecodable or truncated data.
        ImageTooLargeError: more than ``max_pixels`` pixels.
    """
    image_mod = _pil()
    ops = require("PIL.ImageOps", "vision")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", image_mod.DecompressionBombWarning)  # our own max_pixels decides
        try:
            image = image_mod.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"{width}x{height} pixels is more than max_pixels={max_pixels}")
            if draft_size is not None and image.format == "JPEG":
                fit_w, fit_h = _fit(width, height, draft_size, upscale=False)
                image.draft("RGB", (_DRAFT_GAP * fit_w, _DRAFT_GAP * fit_h))
            image.load()
            if image.getexif().get(_ORIENTATION, 1) != 1:
                image = ops.exif_transpose(image)
            return image
        except ImageTooLargeError:
            raise
        except image_mod.DecompressionBombError as exc:
            raise ImageTooLargeError(str(exc)) from exc
        except (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, KeyError) as exc:
            # PIL signals a bad file through any of these, depending on the format plugin
            raise NotAnImageError(f"{type(exc).__name__}: {exc}") from exc


def _to_rgb_on_white(image: PILImage.Image) -> PILImage.Image:
    """RGB with every transparent pixel composited on white; other modes (L, CMYK, I;16, ...) converted."""
    image_mod = _pil()
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = image_mod.new("RGBA", rgba.size, (*WHITE, 255))
        return image_mod.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white
        image = image.point(lambda v: v / 256).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _fit(width: int, height: int, size: int, upscale: bool) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image scaled to fit a ``size`` square, aspect ratio kept."""
    scale = size / max(width, height)
    if not upscale:
        scale = min(scale, 1.0)
    return min(size, max(1, round(width * scale))), min(size, max(1, round(height * scale)))


def thumbnail(image: PILImage.Image, size: int = 384, *, upscale: bool = True) -> PILImage.Image:
    """Fit ``image`` into a ``size`` x ``size`` white square, keeping its aspect ratio, centred.

    Args:
        image: any PIL image (any mode; transparency becomes white).
        size: the square's side in pixels.
        upscale: enlarge images smaller than the square so that their longer side fills it (the vision
            model then sees the object at full scale). False keeps small images at their size, centred in
            white, like ``PIL.Image.thumbnail``.

    Returns:
        A new RGB image of exactly (size, size).
    """
    image_mod = _pil()
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    rgb = _to_rgb_on_white(image)
    width, height = rgb.size
    new_w, new_h = _fit(width, height, size, upscale)
    if (new_w, new_h) != (width, height):
        # PIL's resize widens the bicubic kernel by the scale factor when shrinking (no aliasing); after a
        # 2x JPEG draft it is within ~0.4 dB PSNR of a full-resolution Lanczos at a fraction of the cost
        rgb = rgb.resize((new_w, new_h), image_mod.Resampling.BICUBIC)
    if (new_w, new_h) == (size, size):
        return rgb
    canvas = image_mod.new("RGB", (size, size), WHITE)
    canvas.paste(rgb, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def encode_jpeg(image: PILImage.Image, quality: int = 90) -> bytes:
    """The JPEG bytes of an RGB image (baseline, 4:2:0, no metadata)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=int(quality))
    return out.getvalue()


def thumbnail_line(
    data: bytes,
    size: int = 384,
    *,
    quality: int = 90,
    upscale: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Image file bytes -> one bank line: base64 of the ``size`` x ``size`` JPEG thumbnail (no newline).

    Raises:
        NotAnImageError: undecodable data.
        ImageTooLargeError: more than ``max_pixels`` pixels.
    """
    image = decode_image(data, max_pixels=max_pixels, draft_size=size)
    return base64.b64encode(encode_jpeg(thumbnail(image, size, upscale=upscale), quality))


def decode_bank_line(line: bytes | str) -> PILImage.Image:
    """One line of an image bank (base64 JPEG, trailing newline allowed) -> the decoded RGB image.

    Raises:
        NotAnImageError: not base64, or not an image once decoded.
    """
    if isinstance(line, str):
        line = line.encode("ascii", "replace")
    try:
        data = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotAnImageError(f"not a base64 line: {exc}") from exc
    image = decode_image(data)
    return image if image.mode == "RGB" else image.convert("RGB")
