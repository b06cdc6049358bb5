"""Letterboxing: resize keeping the aspect ratio, pad to the network size, and map boxes back.

The arithmetic is the one ultralytics uses at prediction time (``ultralytics.data.augment.LetterBox``
with ``auto=False, center=True``: gain ``r = min(h / H, w / W)``, each resized side rounded with
Python's ``round`` and kept at least 1 px, the padding split with ``round(d / 2 ∓ 0.1)``, bilinear
resize, constant border), so a model trained by ultralytics sees here exactly the pixels it would
see in ultralytics. Boxes are mapped with the per-axis gains of the *rounded* resized size, as
``ultralytics.utils.ops.scale_boxes`` does, which makes :meth:`LetterboxTransform.to_original`
the exact inverse of :meth:`LetterboxTransform.to_letterbox`.

Coordinates are pixels, ``x1, y1, x2, y2``, origin top-left (see :mod:`vision.types`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["LetterboxTransform", "letterbox", "letterbox_nchw", "to_nchw"]


@dataclass(frozen=True)
class LetterboxTransform:
    """Where a letterboxed image came from: maps boxes between original and network pixels.

    Build it with :meth:`fit` (or get it from :func:`letterbox`); the fields are its result.

    Attributes:
        scale: the gain ``r = min(dst_h / src_h, dst_w / src_w)`` (capped at 1 when upscaling is
            disabled). The pixels are resized to ``resized_hw``, so the exact per-axis gains are
            :attr:`scale_x` and :attr:`scale_y`, which differ from ``scale`` by the rounding of
            the resized size (less than half a pixel over the whole side).
        pad_x: columns of padding on the left.
        pad_y: rows of padding on the top.
        src_hw: ``(height, width)`` of the original image.
        dst_hw: ``(height, width)`` of the letterboxed image (the network input).
    """

    scale: float
    pad_x: int
    pad_y: int
    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]

    @classmethod
    def fit(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int], *, scaleup: bool = True) -> LetterboxTransform:
        """Compute the transform that letterboxes an image of ``src_hw`` into ``dst_hw``.

        Args:
            src_hw: ``(height, width)`` of the original image, each >= 1.
            dst_hw: ``(height, width)`` of the network input, each >= 1.
            scaleup: if False, images smaller than ``dst_hw`` are only padded, never enlarged.

        Returns:
            The transform; no pixels are touched.
        """
        src_h, src_w = _positive_hw(src_hw, "src_hw")
        dst_h, dst_w = _positive_hw(dst_hw, "dst_hw")
        r = min(dst_h / src_h, dst_w / src_w)
        if not scaleup:
            r = min(r, 1.0)
        new_h, new_w = _resized_hw(src_h, src_w, r)
        # ultralytics splits odd padding with round(d / 2 - 0.1): the extra pixel goes right/bottom.
        pad_x = round((dst_w - new_w) / 2 - 0.1)
        pad_y = round((dst_h - new_h) / 2 - 0.1)
        return cls(scale=r, pad_x=pad_x, pad_y=pad_y, src_hw=(src_h, src_w), dst_hw=(dst_h, dst_w))

    @property
    def resized_hw(self) -> tuple[int, int]:
        """``(height, width)`` the image content is resized to inside the padded canvas."""
        return _resized_hw(self.src_hw[0], self.src_hw[1], self.scale)

    @property
    def scale_x(self) -> float:
        """Exact horizontal gain, ``resized_width / src_width``."""
        return self.resized_hw[1] / self.src_hw[1]

    @property
    def scale_y(self) -> float:
        """Exact vertical gain, ``resized_height / src_height``."""
        return self.resized_hw[0] / self.src_hw[0]

    def to_letterbox(self, xyxy: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Map boxes from original-image pixels to letterboxed-image pixels (no clipping).

        Args:
            xyxy: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in original-image pixels.

        Returns:
            ``(N, 4)`` float32 boxes in letterboxed-image pixels. (float32 keeps about 7
            significant digits: mapped back with :meth:`to_original`, a box is recovered within
            1e-3 px for network inputs up to 4096 px a side and aspect ratios up to 1:4.)
        """
        boxes = _as_boxes(xyxy)
        gain, offset = self._gain_offset()
        return (boxes * gain + offset).astype(np.float32)

    def to_original(self, xyxy: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Map boxes from letterboxed-image pixels back to original-image pixels.

        Args:
            xyxy: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in letterboxed-image pixels (e.g. decoded
                detector output).

        Returns:
            ``(N, 4)`` float32 boxes in original-image pixels, clipped to ``[0, W] x [0, H]`` of
            the original image, so a box reaching into the padding ends at the image border.
        """
        boxes = _as_boxes(xyxy)
        gain, offset = self._gain_offset()
        out = (boxes - offset) / gain
        src_h, src_w = self.src_hw
        np.clip(out, 0.0, np.array([src_w, src_h, src_w, src_h], dtype=np.float64), out=out)
        return out.astype(np.float32)

    def _gain_offset(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        sx, sy = self.scale_x, self.scale_y
        gain = np.array([sx, sy, sx, sy], dtype=np.float64)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        return gain, offset


def letterbox(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    *,
    pad_value: int = 114,
    scaleup: bool = True,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[npt.NDArray[np.uint8], LetterboxTransform]:
    """Resize an image keeping its aspect ratio and pad it evenly to ``size``.

    Args:
        image: ``(H, W, 3)`` uint8 array (any channel order; it is kept).
        size: ``(height, width)`` of the output.
        pad_value: value of every channel of the padding, ``0..255`` (ultralytics uses 114).
        scaleup: if False, images smaller than ``size`` are only padded, never enlarged.
        interpolation: OpenCV interpolation flag. ``cv2.INTER_LINEAR`` matches ultralytics'
            prediction path and must stay the default for its models; ``cv2.INTER_AREA`` aliases
            less when shrinking a large scan a lot, at the cost of a train/serve mismatch.

    Returns:
        ``(letterboxed, transform)``: a new ``(size[0], size[1], 3)`` uint8 C-contiguous array and
        the :class:`LetterboxTransform` that maps boxes between the two images.
    """
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(
            f"letterbox expects an (H, W, 3) uint8 image, got {getattr(image, 'shape', None)} "
            f"{getattr(image, 'dtype', type(image).__name__)}"
        )
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
    transform = LetterboxTransform.fit((image.shape[0], image.shape[1]), size, scaleup=scaleup)
    new_h, new_w = transform.resized_hw
    resized: npt.NDArray[np.uint8] = np.ascontiguousarray(image)
    if (new_h, new_w) != resized.shape[:2]:
        resized = np.asarray(cv2.resize(resized, (new_w, new_h), interpolation=interpolation), dtype=np.uint8)
    dst_h, dst_w = transform.dst_hw
    top, left = transform.pad_y, transform.pad_x
    out = cv2.copyMakeBorder(
        resized,
        top,
        dst_h - new_h - top,
        left,
        dst_w - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value, pad_value, pad_value),
    )
    return np.asarray(out, dtype=np.uint8), transform


def to_nchw(
    images: Sequence[npt.NDArray[np.uint8]],
    *,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    dtype: npt.DTypeLike = np.float32,
) -> npt.NDArray[np.floating]:
    """Stack same-size images into a normalised ``(B, 3, h, w)`` network input.

    Each value becomes ``(x / 255 - mean[c]) / std[c]``. The output is allocated once and every
    step writes into it in place (no per-image float temporaries for float32 and float64).

    Args:
        images: B >= 1 arrays of shape ``(h, w, 3)`` uint8, all the same shape; the channel order
            is kept (RGB in this project).
        mean: per-channel mean subtracted after scaling to ``[0, 1]``.
        std: per-channel standard deviation divided by, each non-zero.
        dtype: output float dtype, float32 (default), float16 or float64.

    Returns:
        ``(B, 3, h, w)`` C-contiguous array of ``dtype``.
    """
    norm = _Normaliser.build(mean, std, dtype)
    if len(images) == 0:
        raise ValueError("to_nchw needs at least one image")
    first = images[0]
    shape = getattr(first, "shape", None)
    if shape is None or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"images must be (h, w, 3) uint8 arrays, got {shape}")
    h, w = int(shape[0]), int(shape[1])
    out = np.empty((len(images), 3, h, w), dtype=norm.out_dtype)
    scratch = norm.scratch((h, w))
    for i, img in enumerate(images):
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (h, w, 3)):
            raise ValueError(
                f"image {i} is {getattr(img, 'shape', None)} {getattr(img, 'dtype', type(img).__name__)}; "
                f"every image must be ({h}, {w}, 3) uint8"
            )
        target = scratch if scratch is not None else out[i]
        norm.write(img, target)
        if scratch is not None:
            out[i] = scratch
    return out


def letterbox_nchw(
    images: Sequence[npt.NDArray[np.uint8]],
    size: tuple[int, int],
    *,
    pad_value: int = 114,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    dtype: npt.DTypeLike = np.float32,
    src_hw: Sequence[tuple[int, int]] | None = None,
    batch: int | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[npt.NDArray[np.floating], list[LetterboxTransform]]:
    """Letterbox images straight into a normalised ``(B, 3, h, w)`` network input.

    The values are bit for bit those of ``to_nchw([letterbox(im, size)[0] for im in images])``,
    but each image is resized once and its normalised planes are written into the one output
    array: the padded uint8 canvas and its copy are never made, and the padding is filled with
    the (pre-computed) normalised pad value instead of being converted pixel by pixel.

    Args:
        images: ``(H, W, 3)`` uint8 arrays (any channel order; it is kept), sizes may differ.
        size: ``(height, width)`` of the network input.
        pad_value: value of every channel of the padding, ``0..255``.
        mean: per-channel mean subtracted after scaling to ``[0, 1]``.
        std: per-channel standard deviation divided by, each non-zero.
        dtype: output float dtype, float32 (default), float16 or float64.
        src_hw: per image, the ``(height, width)`` of the original it was decoded from at reduced
            scale (:func:`vision.imageio.decode_image_reduced`). Each transform is then fitted to
            that original, so :meth:`LetterboxTransform.to_original` maps boxes to *original*
            pixels, while the pixels resized to :attr:`LetterboxTransform.resized_hw` come from
            the smaller decoded image. ``None``: every image is its own original.
        batch: rows of the output, at least ``len(images)`` (default: exactly that); rows after
            the images are all padding (to fill a graph with a static batch size).
        interpolation: OpenCV interpolation flag, as :func:`letterbox`.

    Returns:
        ``(tensor, transforms)``: the ``(batch, 3, size[0], size[1])`` C-contiguous array of
        ``dtype`` and one :class:`LetterboxTransform` per image.

    Raises:
        ValueError: no images, an image is not ``(H, W, 3)`` uint8, ``src_hw`` does not have one
            positive ``(height, width)`` per image, ``batch`` is smaller than the number of images,
            or a bad ``pad_value``, ``std`` or ``dtype``.
    """
    norm = _Normaliser.build(mean, std, dtype)
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
    if len(images) == 0:
        raise ValueError("letterbox_nchw needs at least one image")
    if src_hw is not None and len(src_hw) != len(images):
        raise ValueError(f"src_hw has {len(src_hw)} sizes for {len(images)} images")
    rows = len(images) if batch is None else batch
    if rows < len(images):
        raise ValueError(f"batch must be at least the number of images ({len(images)}), got {batch}")
    dst_h, dst_w = _positive_hw(size, "size")
    out = np.empty((rows, 3, dst_h, dst_w), dtype=norm.out_dtype)
    scratch = norm.scratch((dst_h, dst_w))
    pad = norm.pad_column(pad_value)
    transforms: list[LetterboxTransform] = []
    for i, image in enumerate(images):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            raise ValueError(
                f"image {i} must be an (H, W, 3) uint8 array, got {getattr(image, 'shape', None)} "
                f"{getattr(image, 'dtype', type(image).__name__)}"
            )
        original = (image.shape[0], image.shape[1]) if src_hw is None else src_hw[i]
        transform = LetterboxTransform.fit(original, (dst_h, dst_w))
        transforms.append(transform)
        new_h, new_w = transform.resized_hw
        resized: npt.NDArray[np.uint8] = np.ascontiguousarray(image)
        if (new_h, new_w) != resized.shape[:2]:
            resized = np.asarray(cv2.resize(resized, (new_w, new_h), interpolation=interpolation), dtype=np.uint8)
        target = scratch if scratch is not None else out[i]
        top, left = transform.pad_y, transform.pad_x
        norm.write(resized, target[:, top : top + new_h, left : left + new_w])
        target[:, :top] = pad
        target[:, top + new_h :] = pad
        target[:, top : top + new_h, :left] = pad
        target[:, top : top + new_h, left + new_w :] = pad
        if scratch is not None:
            out[i] = scratch
    if rows > len(images):
        out[len(images) :] = pad.astype(norm.out_dtype)
    return out, transforms


@dataclass(frozen=True)
class _Normaliser:
    """``(x / 255 - mean[c]) / std[c]``, step by step in a fixed work dtype.

    The steps and their order fix the rounding, so :func:`to_nchw` and :func:`letterbox_nchw`,
    which share this, produce the same bits. float16 has too little precision for the
    intermediate steps: it is computed in float32 and rounded once at the end.
    """

    out_dtype: np.dtype
    work_dtype: np.dtype
    mean: npt.NDArray[np.floating]  # (3, 1, 1) in work_dtype
    std: npt.NDArray[np.floating]  # (3, 1, 1) in work_dtype
    subtract_mean: bool
    divide_std: bool

    @classmethod
    def build(cls, mean: tuple[float, float, float], std: tuple[float, float, float], dtype: npt.DTypeLike) -> Self:
        out_dtype = np.dtype(dtype)
        if out_dtype.kind != "f":
            raise ValueError(f"dtype must be a float dtype, got {out_dtype}")
        mean_arr = np.asarray(mean, dtype=np.float64).reshape(3, 1, 1)
        std_arr = np.asarray(std, dtype=np.float64).reshape(3, 1, 1)
        if np.any(std_arr == 0):
            raise ValueError(f"std must be non-zero, got {std}")
        work_dtype = np.dtype(np.float32) if out_dtype.itemsize < 4 else out_dtype
        return cls(
            out_dtype=out_dtype,
            work_dtype=work_dtype,
            mean=mean_arr.astype(work_dtype),
            std=std_arr.astype(work_dtype),
            subtract_mean=bool(np.any(mean_arr != 0)),
            divide_std=bool(np.any(std_arr != 1)),
        )

    def scratch(self, hw: tuple[int, int]) -> npt.NDArray[np.floating] | None:
        """A ``(3, h, w)`` work buffer when the output dtype is not the work dtype, else ``None``."""
        return np.empty((3, *hw), dtype=self.work_dtype) if self.work_dtype != self.out_dtype else None

    def write(self, image: npt.NDArray[np.uint8], target: npt.NDArray[np.floating]) -> None:
        """Normalise an ``(h, w, 3)`` uint8 image into a ``(3, h, w)`` view of the work dtype."""
        # cv2.split de-interleaves into three contiguous planes with SIMD; a division reading the
        # (h, w, 3) array through a transposed view instead walks memory with a stride of 3.
        planes = cv2.split(image)
        for c in range(3):
            plane = target[c]
            np.divide(planes[c], np.asarray(255.0, dtype=self.work_dtype), out=plane)
            if self.subtract_mean:
                plane -= self.mean[c]
            if self.divide_std:
                plane /= self.std[c]

    def pad_column(self, pad_value: int) -> npt.NDArray[np.floating]:
        """The normalised value of a ``pad_value`` pixel, ``(3, 1, 1)`` in the work dtype."""
        column = np.empty((3, 1, 1), dtype=self.work_dtype)
        self.write(np.full((1, 1, 3), pad_value, dtype=np.uint8), column)
        return column


def _resized_hw(src_h: int, src_w: int, r: float) -> tuple[int, int]:
    # Python's round (half to even) as ultralytics; at least 1 px so a 1 x 3000 strip stays valid.
    return max(round(src_h * r), 1), max(round(src_w * r), 1)


def _positive_hw(hw: tuple[int, int], name: str) -> tuple[int, int]:
    if len(hw) != 2:
        raise ValueError(f"{name} must be (height, width), got {hw!r}")
    h, w = int(hw[0]), int(hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {hw!r}")
    return h, w


def _as_boxes(xyxy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    boxes = np.asarray(xyxy, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    return boxes
