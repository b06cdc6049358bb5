"""Uploaded bytes → ``(H, W, 3)`` uint8 RGB arrays, with limits and typed errors.

Everything that enters the pipeline from outside (a scanner workstation's upload, a file given to
the CLI) is decoded here, so this module is where hostile or broken input is stopped:

* **Size limits come first.** The byte count is checked before anything is parsed, and the pixel
  count is read from the file *header* (Pillow opens lazily) and checked before any pixel buffer
  is allocated, so a 60,000 x 60,000 PNG of a few hundred bytes is refused without decoding it.
  Pillow's own decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) is a process-wide global
  that would raise Pillow's exception instead of ours; we open through Pillow's format plugins
  directly so that our per-call ``max_pixels`` is the only limit and the global is left alone.
* **Truncated files are errors.** ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False``
  (Pillow would otherwise grey-fill a half-uploaded JPEG and we would inspect made-up pixels), and
  every image is fully loaded before it is returned.
* **One family of errors.** Whatever Pillow, zlib or libtiff raise for malformed input is turned
  into an :class:`ImageDecodeError` subclass carrying a machine-readable ``code`` that the
  service maps to an HTTP status.

Colour handling: greyscale, palette, CMYK and YCbCr images are converted to RGB; images with
transparency (RGBA, LA, PA, palette with ``tRNS``) are composited on white, as a document on paper
would look. EXIF orientation is applied, so pixel rows run top to bottom as a person sees the
image.

16-bit (and 32-bit integer or float) greyscale, as X-ray scanners write TIFF and PNG, is windowed
to 8 bit by :func:`window_to_uint8`: the 0.5th and 99.5th percentiles of the finite pixels are
mapped linearly to 0 and 255 and the 0.5 % tails on each side saturate. The mapping is monotonic
increasing, so the scanner's orientation (dense material = low value = dark) is kept. The window
is per image, like an operator display's auto-contrast; a scanner-specific fixed mapping, if one
is ever needed, belongs in front of this module, not in it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile, ImageOps

from vision.types import ImageRecord, Modality

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "JPEG_REDUCTIONS",
    "SUPPORTED_FORMATS",
    "CorruptImageError",
    "EmptyImageError",
    "ImageDecodeError",
    "ImageInfo",
    "ImageTooLargeError",
    "ReducedImage",
    "UnsupportedFormatError",
    "decode_image",
    "decode_image_reduced",
    "encode_jpeg",
    "encode_png",
    "load_record",
    "probe_image",
    "read_image_file",
    "window_to_uint8",
]

logger = logging.getLogger(__name__)

#: Largest accepted upload, in bytes (50 MiB). A full-resolution 16-bit container scan as
#: uncompressed TIFF is in the tens of megabytes; larger uploads are more likely abuse than data.
DEFAULT_MAX_BYTES = 50 * 1024**2

#: Largest accepted image, in pixels (width x height). 100 MP fits the largest single-view cargo
#: and baggage scans (e.g. 10,000 x 10,000) and a 600-dpi A3 document scan (about 70 MP), while
#: bounding the decoded RGB buffer to about 300 MB.
DEFAULT_MAX_PIXELS = 100_000_000

#: Formats accepted, as Pillow names them (an MPO file, a JPEG with extra frames, counts as JPEG).
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")

# Signatures longer than Pillow needs to see: a file cut inside one is truncated, not foreign.
_SIGNATURES: tuple[tuple[str, bytes], ...] = (
    ("PNG", b"\x89PNG\r\n\x1a\n"),
    ("JPEG", b"\xff\xd8\xff"),
    ("TIFF", b"II*\x00"),
    ("TIFF", b"MM\x00*"),
)

# Magic numbers of formats people commonly upload by mistake, only to say what a refused file
# looks like in the error message. (offset, signature, description)
_KNOWN_UNSUPPORTED: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "a PDF document"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (128, b"DICM", "a DICOM file"),
    (4, b"ftypheic", "a HEIC image"),
    (4, b"ftypmif1", "a HEIF image"),
    (4, b"ftypavif", "an AVIF image"),
    (0, b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (0, b"PK\x03\x04", "a ZIP archive (e.g. DOCX/XLSX)"),
)

# Percentiles of the valid pixels mapped to 0 and 255 when windowing high-bit-depth greyscale.
_WINDOW_PERCENTILES = (0.5, 99.5)


# --------------------------------------------------------------------------------------- errors


class ImageDecodeError(ValueError):
    """Base class: the bytes could not be turned into an image we accept.

    Attributes:
        code: short machine-readable reason, stable across releases (the service maps it to an
            HTTP status: ``empty`` → 400, ``unsupported_format`` → 415, ``too_large`` → 413,
            ``corrupt`` → 422).
    """

    code: ClassVar[str] = "decode_error"


class EmptyImageError(ImageDecodeError):
    """The upload had zero bytes."""

    code: ClassVar[str] = "empty"


class UnsupportedFormatError(ImageDecodeError):
    """The bytes are not one of :data:`SUPPORTED_FORMATS` (a PDF, a GIF, random bytes, ...) or
    use a pixel layout we cannot convert to RGB."""

    code: ClassVar[str] = "unsupported_format"


class ImageTooLargeError(ImageDecodeError):
    """The upload has more bytes, or its header declares more pixels, than allowed.

    Attributes:
        quantity: ``"bytes"`` or ``"pixels"``.
        limit: the limit that was exceeded.
        actual: the offending value.
    """

    code: ClassVar[str] = "too_large"

    def __init__(self, message: str, *, quantity: str, limit: int, actual: int) -> None:
        super().__init__(message)
        self.quantity = quantity
        self.limit = limit
        self.actual = actual


class CorruptImageError(ImageDecodeError):
    """The bytes start like a supported format but are truncated or malformed."""

    code: ClassVar[str] = "corrupt"


# ----------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says, before any pixel is decoded.

    Attributes:
        format: one of :data:`SUPPORTED_FORMATS`.
        width: stored width in pixels (before EXIF orientation is applied).
        height: stored height in pixels (before EXIF orientation is applied).
        mode: Pillow's pixel mode, e.g. ``"RGB"``, ``"L"``, ``"I;16"``, ``"P"``, ``"CMYK"``.
    """

    format: str
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height


def probe_image(data: bytes) -> ImageInfo:
    """Read format, size and pixel mode from the header without decoding pixels.

    No size limit is applied: the caller decides what to do with the declared size.

    Args:
        data: the encoded file.

    Returns:
        The header's :class:`ImageInfo`.

    Raises:
        EmptyImageError: ``data`` is empty.
        UnsupportedFormatError: not a supported format.
        CorruptImageError: starts like a supported format but the header is malformed.
    """
    _check_bytes(data, max_bytes=None)
    im = _open_lazily(data)
    try:
        return _info(im)
    finally:
        im.close()


def decode_image(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> npt.NDArray[np.uint8]:
    """Decode an encoded image into RGB pixels, enforcing size limits before decoding.

    Args:
        data: the encoded file (JPEG, PNG, TIFF, BMP or WebP; the first frame of a multi-frame
            file).
        max_bytes: largest accepted ``len(data)``; exactly ``max_bytes`` is accepted.
        max_pixels: largest accepted ``width * height`` declared by the header; exactly
            ``max_pixels`` is accepted.

    Returns:
        ``(H, W, 3)`` uint8 array, RGB, C-contiguous and writable, EXIF orientation applied.

    Raises:
        EmptyImageError: ``data`` is empty.
        ImageTooLargeError: more than ``max_bytes`` bytes or ``max_pixels`` pixels.
        UnsupportedFormatError: not a supported format or pixel mode.
        CorruptImageError: truncated or malformed.
    """
    return _decode(data, max_bytes=max_bytes, max_pixels=max_pixels).pixels


#: Scales libjpeg can decode at directly (its scaled inverse DCT), largest reduction first.
JPEG_REDUCTIONS: tuple[int, ...] = (8, 4, 2)


@dataclass(frozen=True)
class ReducedImage:
    """An image decoded at a reduced scale, with the size of the original it stands for.

    Attributes:
        pixels: ``(h, w, 3)`` uint8 RGB, C-contiguous and writable, EXIF orientation applied;
            ``h = ceil(H / factor)`` and ``w = ceil(W / factor)``.
        original_hw: ``(H, W)`` of the full-resolution image, EXIF orientation applied: the
            coordinate frame boxes must be reported in.
        factor: 1 (decoded at full size), 2, 4 or 8.
    """

    pixels: npt.NDArray[np.uint8]
    original_hw: tuple[int, int]
    factor: int


def decode_image_reduced(
    data: bytes,
    fit_hw: tuple[int, int],
    *,
    max_factor: int = 2,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReducedImage:
    """Decode an image only as large as a letterbox into ``fit_hw`` needs, like :func:`decode_image`.

    A letterbox shrinks an ``H x W`` image by ``r = min(fit_h / H, fit_w / W)``. A JPEG for which
    ``r <= 1/2`` (``1/4``, ``1/8``) is decoded by libjpeg at half (a quarter, an eighth) of its size
    with its scaled inverse DCT, which skips most of the decoding work; the decoded image is then
    still at least ``round(H * r) x round(W * r)``, so the letterbox resize only shrinks it further
    and no detail the network input could hold is lost. Every other image (other formats, a JPEG
    that is not that much larger) is decoded at full size (``factor == 1``).

    The pixels are not those of a full decode followed by the resize: the scaled IDCT averages
    each block, where a bilinear resize samples. A detector sees slightly different (smoother)
    input, so detections move by model noise. The further the reduction, the further the input
    drifts from the bilinear-shrunk images a model was trained on, hence ``max_factor`` 2 by
    default: measure a model's detections with and without before allowing more.

    Limits and errors are those of :func:`decode_image` and apply to the *full* size declared by
    the header, so the answer to an upload does not depend on ``fit_hw``.

    Args:
        data: the encoded file.
        fit_hw: ``(height, width)`` the image will be letterboxed into (the network input).
        max_factor: the largest reduction allowed: 1 (never reduce), 2 (default), 4 or 8.
        max_bytes: largest accepted ``len(data)``.
        max_pixels: largest accepted ``width * height`` declared by the header.

    Returns:
        The :class:`ReducedImage`; give ``original_hw`` to the letterbox
        (:func:`vision.letterbox.letterbox_nchw` ``src_hw``) so boxes map to original pixels.

    Raises:
        ValueError: ``fit_hw`` is not two positive integers, or ``max_factor`` is not 1, 2, 4 or 8.
        ImageDecodeError: as :func:`decode_image`.
    """
    if len(fit_hw) != 2 or int(fit_hw[0]) < 1 or int(fit_hw[1]) < 1:
        raise ValueError(f"fit_hw must be a positive (height, width), got {fit_hw!r}")
    if max_factor not in (1, *JPEG_REDUCTIONS):
        raise ValueError(f"max_factor must be one of 1, 2, 4, 8, got {max_factor!r}")
    decoded = _decode(
        data,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        fit_hw=(int(fit_hw[0]), int(fit_hw[1])),
        max_factor=max_factor,
    )
    return ReducedImage(pixels=decoded.pixels, original_hw=decoded.original_hw, factor=decoded.factor)


def read_image_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> npt.NDArray[np.uint8]:
    """Decode an image file like :func:`decode_image`, refusing oversized files before reading.

    Args:
        path: file to read.
        max_bytes: largest accepted file size in bytes.
        max_pixels: largest accepted ``width * height``.

    Returns:
        ``(H, W, 3)`` uint8 RGB array, as :func:`decode_image`.

    Raises:
        OSError: the file cannot be opened or read (e.g. ``FileNotFoundError``); this is about the
            path, not the image content, so it is not turned into an :class:`ImageDecodeError`.
        ImageDecodeError: as :func:`decode_image`.
    """
    _check_limit_args(max_bytes, max_pixels)
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large_bytes(size, max_bytes)
    with path.open("rb") as f:
        # Read one byte past the limit: a file that grew after stat() is still refused.
        data = f.read(max_bytes + 1)
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)


def load_record(
    data: bytes,
    *,
    record_id: str,
    modality: Modality,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: Mapping[str, Any] | None = None,
) -> ImageRecord:
    """Decode an upload into the :class:`~vision.types.ImageRecord` the pipeline consumes.

    Args:
        data: the encoded file.
        record_id: identifier of the record (the service uses a UUID).
        modality: ``"xray"`` or ``"document"``.
        max_bytes: as :func:`decode_image`.
        max_pixels: as :func:`decode_image`.
        source: caller provenance (file name, scanner id, ...). Copied; the keys this function
            adds (below) take precedence over the caller's.

    Returns:
        An ``ImageRecord`` whose ``source`` also holds ``sha256`` (hex digest of ``data``),
        ``format``, ``mode`` (the file's pixel mode), ``size_bytes``, ``original_width`` and
        ``original_height`` (as stored in the file, before EXIF orientation).

    Raises:
        ImageDecodeError: as :func:`decode_image`.
        ValueError: ``modality`` is not a known modality.
    """
    decoded = _decode(data, max_bytes=max_bytes, max_pixels=max_pixels)
    pixels, info = decoded.pixels, decoded.info
    meta: dict[str, Any] = dict(source or {})
    meta.update(
        sha256=hashlib.sha256(data).hexdigest(),
        format=info.format,
        mode=info.mode,
        size_bytes=len(data),
        original_width=info.width,
        original_height=info.height,
    )
    return ImageRecord(id=record_id, pixels=pixels, modality=modality, source=meta)


def encode_png(pixels: npt.NDArray[np.generic]) -> bytes:
    """Encode pixels losslessly as PNG.

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB, ``(H, W)`` uint8 greyscale or ``(H, W)`` uint16 greyscale.

    Returns:
        The PNG file.
    """
    return _encode(pixels, "PNG", allow_uint16=True)


def encode_jpeg(pixels: npt.NDArray[np.generic], quality: int = 90) -> bytes:
    """Encode pixels as baseline JPEG.

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 greyscale.
        quality: JPEG quality, 1 (smallest) to 95 (best; Pillow advises against higher).

    Returns:
        The JPEG file.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return _encode(pixels, "JPEG", allow_uint16=False, quality=quality)


def window_to_uint8(values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Map high-bit-depth greyscale to uint8 with a robust percentile window.

    The 0.5th and 99.5th percentiles (``inverted_cdf``, i.e. actual pixel values) of the finite
    pixels become 0 and 255, linearly, with values outside saturating. The map is monotonic
    increasing, so dark stays dark. If the window is empty (a constant image), the nominal range
    is used instead: ``[0, 65535]`` for integer data, ``[0, 1]`` for float data. Non-finite
    float pixels become 0.

    Args:
        values: ``(H, W)`` array of uint16, int32 or float32/float64.

    Returns:
        ``(H, W)`` uint8 array.
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:
        return _window_uint16(arr.astype(np.uint16, copy=False))
    return _window_generic(arr)


# ------------------------------------------------------------------------------------ internals


@dataclass(frozen=True)
class _Decoded:
    pixels: npt.NDArray[np.uint8]
    info: ImageInfo
    original_hw: tuple[int, int]  # full size, EXIF orientation applied
    factor: int


def _decode(
    data: bytes, *, max_bytes: int, max_pixels: int, fit_hw: tuple[int, int] | None = None, max_factor: int = 1
) -> _Decoded:
    _check_limit_args(max_bytes, max_pixels)
    _check_bytes(data, max_bytes=max_bytes)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide Pillow switch that some training code flips; with it on, a truncated
        # upload is silently grey-filled and we would inspect pixels the scanner never produced.
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; refusing to decode "
            "uploads because truncated images would be accepted. Find the code that sets it."
        )
    im = _open_lazily(data)
    try:
        info = _info(im)
        if info.pixels > max_pixels:
            raise ImageTooLargeError(
                f"image is {info.width} x {info.height} = {info.pixels:,} pixels; the limit is {max_pixels:,} pixels",
                quantity="pixels",
                limit=max_pixels,
                actual=info.pixels,
            )
        factor = _draft(im, info, fit_hw, max_factor) if fit_hw is not None else 1
        try:
            im.load()
        except MemoryError:
            raise
        except Exception as exc:  # Pillow plugins raise OSError, SyntaxError, zlib.error, ...
            raise CorruptImageError(f"{info.format} image is truncated or corrupt: {exc}") from exc
        swapped = _apply_exif_orientation(im)
        original_hw = (info.width, info.height) if swapped else (info.height, info.width)
        return _Decoded(_to_rgb(im, info), info, original_hw, factor)
    finally:
        im.close()


def _draft(im: ImageFile.ImageFile, info: ImageInfo, fit_hw: tuple[int, int], max_factor: int) -> int:
    """Ask a JPEG decoder for the largest reduction a letterbox into ``fit_hw`` allows; returns it."""
    if info.format != "JPEG":
        return 1
    swapped = _exif_orientation(im) in _SWAPPING_ORIENTATIONS
    height, width = (info.width, info.height) if swapped else (info.height, info.width)
    gain = min(fit_hw[0] / height, fit_hw[1] / width)
    factor = next((f for f in JPEG_REDUCTIONS if f <= max_factor and f * gain <= 1.0), 1)
    if factor == 1:
        return 1
    # Pillow picks the largest of 8, 4, 2 not above min(W // w, H // h) of the size asked for, so
    # asking for (W // factor, H // factor) gets exactly ``factor``; it reports the scale it chose.
    drafted = im.draft(None, (max(info.width // factor, 1), max(info.height // factor, 1)))
    if drafted is None:  # a file of several tiles, which Pillow's JPEG plugin does not scale
        return 1
    return round(info.width / drafted[1][2])


def _check_limit_args(max_bytes: int, max_pixels: int) -> None:
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError(f"max_bytes and max_pixels must be >= 1, got {max_bytes} and {max_pixels}")


def _check_bytes(data: bytes, *, max_bytes: int | None) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"image data must be bytes, got {type(data).__name__}")
    n = len(data) if not isinstance(data, memoryview) else data.nbytes
    if n == 0:
        raise EmptyImageError("the image is empty (0 bytes)")
    if max_bytes is not None and n > max_bytes:
        raise _too_large_bytes(n, max_bytes)


def _too_large_bytes(actual: int, limit: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"image is {actual:,} bytes; the limit is {limit:,} bytes",
        quantity="bytes",
        limit=limit,
        actual=actual,
    )


def _open_lazily(data: bytes) -> ImageFile.ImageFile:
    """Identify the format and parse the header only, without Pillow's global bomb check.

    This mirrors ``PIL.Image.open`` restricted to our formats, minus its
    ``_decompression_bomb_check``: our caller applies its own per-call pixel limit next.
    """
    Image.init()  # registers every plugin once; later calls return immediately
    prefix = bytes(data[:16])
    for fmt in SUPPORTED_FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(prefix):
            continue
        try:
            im = factory(io.BytesIO(data), "")
        except MemoryError:
            raise
        except Exception as exc:  # header parsers raise SyntaxError, struct.error, OSError, ...
            raise CorruptImageError(f"{fmt} header is malformed: {exc}") from exc
        if not isinstance(im, ImageFile.ImageFile):  # pragma: no cover - factories return these
            raise CorruptImageError(f"{fmt} header could not be parsed")
        return im
    for fmt, signature in _SIGNATURES:
        if len(prefix) < len(signature) and signature.startswith(prefix):
            raise CorruptImageError(f"{fmt} file is truncated to {len(prefix)} bytes")
    raise UnsupportedFormatError(
        f"unsupported image format{_describe_unsupported(bytes(data[:160]))}; supported: JPEG, PNG, TIFF, BMP, WebP"
    )


def _describe_unsupported(head: bytes) -> str:
    for offset, magic, what in _KNOWN_UNSUPPORTED:
        if head[offset : offset + len(magic)] == magic:
            return f" (the data looks like {what})"
    return ""


def _info(im: ImageFile.ImageFile) -> ImageInfo:
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    width, height = im.size
    if width < 1 or height < 1:
        raise CorruptImageError(f"{fmt} header declares an empty image ({width} x {height})")
    return ImageInfo(format=fmt, width=int(width), height=int(height), mode=im.mode)


#: EXIF orientations that turn the stored image by 90 degrees (width and height swap).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def _exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored), read from the header; 1 when unreadable."""
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except MemoryError:
        raise
    except Exception:
        return 1  # _apply_exif_orientation logs the problem


def _apply_exif_orientation(im: Image.Image) -> bool:
    """Apply the EXIF orientation in place; returns whether width and height were swapped."""
    try:
        orientation = _exif_orientation(im)
        ImageOps.exif_transpose(im, in_place=True)
    except MemoryError:
        raise
    except Exception as exc:
        # Malformed EXIF does not make the pixels wrong; keep the stored orientation.
        logger.warning("ignoring unreadable EXIF orientation: %s", exc)
        return False
    return orientation in _SWAPPING_ORIENTATIONS


_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_GREY_PREFIXES = ("I;16", "I", "F")


def _to_rgb(im: Image.Image, info: ImageInfo) -> npt.NDArray[np.uint8]:
    mode = im.mode
    try:
        if mode == "RGB":
            return np.array(im, dtype=np.uint8, order="C")
        if mode == "L":
            return _grey_to_rgb(np.asarray(im, dtype=np.uint8))
        if mode.startswith(_HIGH_DEPTH_GREY_PREFIXES):
            return _grey_to_rgb(window_to_uint8(np.asarray(im)))
        if mode in _ALPHA_MODES or (mode == "P" and im.has_transparency_data):
            return _composite_on_white(np.asarray(im.convert("RGBA"), dtype=np.uint8))
        return np.array(im.convert("RGB"), dtype=np.uint8, order="C")
    except MemoryError:
        raise
    except Exception as exc:  # e.g. Pillow has no conversion from LAB or a rare TIFF layout
        raise UnsupportedFormatError(
            f"{info.format} image with pixel mode {mode!r} cannot be converted to RGB: {exc}"
        ) from exc


def _grey_to_rgb(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    out = np.empty((*grey.shape, 3), dtype=np.uint8)
    out[...] = grey[..., None]
    return out


def _composite_on_white(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``rgb * a + 255 * (1 - a)`` with rounding, in uint16 (the sum never exceeds 255 * 255)."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    out = rgba[..., :3].astype(np.uint16)
    out *= alpha
    out += 255 * (255 - alpha) + 127
    out //= 255
    return np.ascontiguousarray(out, dtype=np.uint8)


def _row_chunks(shape: tuple[int, ...]) -> list[slice]:
    """Row slices of about 4 Mpixel each: bounds the temporaries of whole-image numpy passes."""
    rows = max(1, (1 << 22) // max(1, int(np.prod(shape[1:]))))
    return [slice(r, r + rows) for r in range(0, shape[0], rows)]


def _window_uint16(arr: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    # A 65,536-bin histogram gives exact percentiles in O(N) without sorting, and a lookup table
    # maps the image without a float copy of it. Both run by row chunks because numpy widens
    # uint16 indices to intp (8 bytes per pixel) internally.
    hist = np.zeros(65536, dtype=np.int64)
    for rows in _row_chunks(arr.shape):
        hist += np.bincount(arr[rows].ravel(), minlength=65536)
    cdf = np.cumsum(hist)
    n = int(cdf[-1])
    lo_q, hi_q = (p / 100.0 for p in _WINDOW_PERCENTILES)
    # inverted_cdf, as numpy names it: the smallest value v with count(<= v) >= q * n
    lo = int(np.searchsorted(cdf, lo_q * n, side="left"))
    hi = int(np.searchsorted(cdf, hi_q * n, side="left"))
    if hi <= lo:
        lo, hi = 0, 65535
    lut = _linear_window(np.arange(65536, dtype=np.float32), float(lo), float(hi))
    out = np.empty(arr.shape, dtype=np.uint8)
    for rows in _row_chunks(arr.shape):
        out[rows] = lut[arr[rows]]
    return out


def _window_generic(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    # int32 and float images are rare (some TIFF writers); float32 is ample precision for 8 bits.
    out = np.zeros(arr.shape, dtype=np.uint8)
    finite = np.isfinite(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, dtype=bool)
    valid = arr[finite]
    if valid.size > (1 << 22):
        valid = valid[:: -(-valid.size // (1 << 22))]  # deterministic subsample for the percentiles
    lo = hi = 0.0
    if valid.size:
        lo, hi = (float(v) for v in np.percentile(valid, _WINDOW_PERCENTILES, method="inverted_cdf"))
    if hi <= lo:
        lo, hi = (0.0, 65535.0) if arr.dtype.kind in "iu" else (0.0, 1.0)
    for rows in _row_chunks(arr.shape):
        chunk = np.nan_to_num(arr[rows].astype(np.float32), nan=lo, posinf=lo, neginf=lo)
        out[rows] = np.where(finite[rows], _linear_window(chunk, lo, hi), 0)
    return out


def _linear_window(values: npt.NDArray[np.float32], lo: float, hi: float) -> npt.NDArray[np.uint8]:
    """``lo`` → 0, ``hi`` → 255, linear in between, rounded, saturating outside; reuses ``values``."""
    values -= np.float32(lo)
    values *= np.float32(255.0 / (hi - lo))
    np.clip(values, 0.0, 255.0, out=values)
    np.rint(values, out=values)
    return values.astype(np.uint8)


def _encode(pixels: npt.NDArray[np.generic], fmt: str, *, allow_uint16: bool, **params: Any) -> bytes:
    arr = np.asarray(pixels)
    ok = (arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3))) or (
        allow_uint16 and arr.dtype == np.uint16 and arr.ndim == 2
    )
    if not ok or arr.shape[0] == 0 or arr.shape[1] == 0:
        allowed = "(H, W, 3) or (H, W) uint8" + (", or (H, W) uint16" if allow_uint16 else "")
        raise ValueError(f"cannot encode {arr.shape} {arr.dtype} as {fmt}; expected {allowed}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **params)
    return buf.getvalue()
