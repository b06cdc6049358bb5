"""Synthetic dual-energy (and single-energy) X-ray baggage scans with labelled threats.

The generator is physical where it matters for a detector: objects are thickness maps of real
materials, their attenuation at a low and a high energy follows Beer–Lambert with tabulated
coefficients (:mod:`~detectors.synth.xray_materials`), overlapping objects add in the log domain,
the scanner blurs, adds quantum noise and streaks (:mod:`~detectors.synth.xray_scanner`), and the
display fuses the two energies into the operator colours — orange organic, green inorganic/mixed,
blue metal, dark when dense — or renders grey for single-energy machines
(:mod:`~detectors.synth.xray_display`). Scenes — trays, suitcases, backpacks, handbags, parcels with
realistic clutter and confusers — come from :mod:`~detectors.synth.xray_scene`.

Every scan is a pure function of ``(seed, index)``, so a dataset can be generated in parallel chunks
and still be byte-identical. Typical use::

    scan = generate_scan(seed=7, index=0, size=(640, 640))
    scan.image          # (640, 640, 3) uint8 RGB
    scan.objects[0].box # x1, y1, x2, y2 in pixels
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from detectors.synth.xray_display import fuse_dual_energy, render_greyscale
from detectors.synth.xray_scanner import acquire, sample_profile
from detectors.synth.xray_scene import Concealment, Scene, compose_scene
from detectors.xray import XRAY_CLASSES

__all__ = [
    "DEFAULT_GREYSCALE_FRACTION",
    "XRAY_CLASSES",
    "Scan",
    "ScanObject",
    "ScannerMode",
    "generate_scan",
    "parse_size",
    "scan_rng",
]

ScannerMode = Literal["dual_energy", "single_energy"]

#: Share of scans rendered as single-energy greyscale by default.
DEFAULT_GREYSCALE_FRACTION = 0.15

# Independent random streams per scan: the scene's content does not change when only the rendering
# mode's probability changes.
_STREAM_SCENE = 0
_STREAM_MODE = 1
_STREAM_SCANNER = 2


@dataclass(frozen=True)
class ScanObject:
    """A labelled threat in a scan.

    Attributes:
        class_id: index into :data:`XRAY_CLASSES`.
        class_name: ``XRAY_CLASSES[class_id]``.
        subtype: variant, e.g. ``"pistol"``, ``"revolver"``, ``"folding_knife"``, ``"drug_brick"``.
        concealment: ``"easy"``, ``"hard"`` or ``"hidden"``, measured from what overlaps it.
        intent: the difficulty its placement aimed at (for analysis; the label is ``concealment``).
        box: ``(x1, y1, x2, y2)`` pixel-edge coordinates of the tight box of ``mask``: the object
            occupies columns ``x1 .. x2-1`` and rows ``y1 .. y2-1``.
        mask: ``(H, W)`` bool, the object's footprint (its attenuation > 0) in the image.
        overlapped_fraction: share of its pixels overlapped by other objects.
        dense_fraction: share of its pixels overlapped by dense clutter.
    """

    class_id: int
    class_name: str
    subtype: str
    concealment: Concealment
    intent: Concealment
    box: tuple[int, int, int, int]
    mask: npt.NDArray[np.bool_]
    overlapped_fraction: float
    dense_fraction: float

    def yolo(self, width: int, height: int) -> tuple[int, float, float, float, float]:
        """``(class_id, cx, cy, w, h)`` normalised to ``[0, 1]`` by the image size."""
        x1, y1, x2, y2 = self.box
        return self.class_id, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height


@dataclass(frozen=True)
class Scan:
    """One synthetic scan.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB as the operator display shows it.
        mode: ``"dual_energy"`` (pseudo-colour) or ``"single_energy"`` (greyscale).
        objects: labelled threats.
        attenuation: ``(H, W, 2)`` float32 ideal attenuation (low, high energy) before the scanner.
        containers: kinds of containers on the belt.
    """

    image: npt.NDArray[np.uint8]
    mode: ScannerMode
    objects: tuple[ScanObject, ...]
    attenuation: npt.NDArray[np.float32]
    containers: tuple[str, ...]

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def parse_size(size: int | tuple[int, int] | str) -> tuple[int, int]:
    """``(width, height)`` from ``640``, ``(640, 480)`` or ``"640x480"``.

    Raises:
        ValueError: for a malformed string or a side below 32 or above 8192 pixels.
    """
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"size must look like 640 or 640x480, got {size!r}") from None
        if len(vals) == 1:
            w = h = vals[0]
        elif len(vals) == 2:
            w, h = vals
        else:
            raise ValueError(f"size must look like 640 or 640x480, got {size!r}")
    elif isinstance(size, int):
        w = h = size
    else:
        w, h = int(size[0]), int(size[1])
    if not (32 <= w <= 8192 and 32 <= h <= 8192):
        raise ValueError(f"image sides must be within 32..8192 pixels, got {w}x{h}")
    return w, h


def scan_rng(seed: int, index: int, stream: int = _STREAM_SCENE) -> np.random.Generator:
    """The random generator of scan ``index`` of dataset ``seed`` (one independent stream each)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def _objects(scene: Scene) -> tuple[ScanObject, ...]:
    out = []
    h, w = scene.height, scene.width
    for t in scene.threats:
        mask = np.zeros((h, w), dtype=bool)
        ph, pw = t.patch.att.shape[:2]
        mask[t.patch.y0 : t.patch.y0 + ph, t.patch.x0 : t.patch.x0 + pw] = t.patch.mask
        ys, xs = np.nonzero(mask)
        if xs.size == 0:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        out.append(
            ScanObject(
                class_id=XRAY_CLASSES.index(t.class_name),
                class_name=t.class_name,
                subtype=t.subtype,
                concealment=t.concealment,
                intent=t.intent,
                box=box,
                mask=mask,
                overlapped_fraction=round(t.overlapped_fraction, 4),
                dense_fraction=round(t.dense_fraction, 4),
            )
        )
    return tuple(out)


def generate_scan(
    seed: int,
    index: int = 0,
    *,
    size: int | tuple[int, int] | str = 640,
    greyscale: bool | None = None,
    greyscale_fraction: float = DEFAULT_GREYSCALE_FRACTION,
) -> Scan:
    """Generate scan ``index`` of the synthetic dataset ``seed``.

    Args:
        seed: dataset seed (>= 0).
        index: scan number within the dataset (>= 0).
        size: output ``(width, height)``, a single side for a square, or ``"WxH"``.
        greyscale: force single-energy greyscale (True) or dual-energy colour (False); ``None``
            draws it with probability ``greyscale_fraction``.
        greyscale_fraction: probability of a single-energy scan when ``greyscale`` is ``None``.

    Returns:
        The scan; identical for identical arguments on any machine with the same library versions.

    Raises:
        ValueError: for a bad size, seed, index or fraction.
    """
    if not 0.0 <= greyscale_fraction <= 1.0:
        raise ValueError(f"greyscale_fraction must be within [0, 1], got {greyscale_fraction}")
    width, height = parse_size(size)
    scene = compose_scene(scan_rng(seed, index, _STREAM_SCENE), width, height, XRAY_CLASSES)
    if greyscale is None:
        greyscale = bool(scan_rng(seed, index, _STREAM_MODE).random() < greyscale_fraction)
    scanner_rng = scan_rng(seed, index, _STREAM_SCANNER)
    profile = sample_profile(scanner_rng)
    measured = acquire(scene.att, profile, scanner_rng)
    if greyscale:
        image = render_greyscale(measured, scale=profile.display_scale, edge_amount=profile.edge_enhance)
    else:
        image = fuse_dual_energy(measured, scale=profile.display_scale, edge_amount=profile.edge_enhance)
    return Scan(
        image=image,
        mode="single_energy" if greyscale else "dual_energy",
        objects=_objects(scene),
        attenuation=scene.att,
        containers=tuple(scene.containers),
    )
