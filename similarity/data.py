"""Training and evaluation data of the similarity model: specimen items, sources, splits,
scan-condition augmentation and the P x K batch sampler.

An *owner* is one identity a specimen can be registered for: an authority's stamp, a signatory's
signature. For the real signature set an owner is one (writer, name) pair, because every writer
wrote the same ten names: the same name by another writer is the hardest negative the set offers.

Every item records its owner, whether it is genuine, a *group* (items of different owners in one
group are hard negatives of each other: same name, or the forgeries of one owner) and a *split key*
(the writer or authority id). Splits are by split key, never by item, so held-out writers and
authorities are never seen in training (:func:`heldout_fraction_of`).

Sources:

* :func:`load_signature_dataset` - the real signatures under ``CV_SIGNATURES_DIR`` (default
  ``../shared/datasets/signatures-crossmedia`` next to the repository), read in place.
* :func:`load_specimen_folder` - ``<owner>/genuine/*`` and ``<owner>/forged/*``, as written by
  ``customs-vision synth specimens`` and as an agency's archive is laid out.
* :func:`render_specimen_items` - stamp and signature specimens with skilled forgeries from the
  document generators (:mod:`detectors.synth.doc_specimens`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from similarity.embedder import preprocess_crops
from vision.imageio import encode_png, read_image_file
from vision.types import ModelSpec

__all__ = [
    "IMAGE_SUFFIXES",
    "SIGNATURES_DIR_ENV",
    "DataError",
    "PKBatchSampler",
    "ScanAugment",
    "SpecimenDataset",
    "SpecimenItem",
    "count_summary",
    "default_signatures_dir",
    "forgery_plan",
    "heldout_fraction_of",
    "ink_to_rgb",
    "load_signature_dataset",
    "load_specimen_folder",
    "owners_of",
    "render_specimen_items",
    "split_items",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
SIGNATURES_DIR_ENV = "CV_SIGNATURES_DIR"

#: Crops are kept in memory with their longest side at most this many pixels: twice the model's
#: input width leaves room for the scale augmentation without holding full-resolution scans.
CACHE_LONG_SIDE = 384

#: Version of what :func:`render_specimen_items` renders for given arguments; part of the cache
#: key, so a cache written by an older layout is rendered again (2: forgery cycle offset per owner).
RENDER_LAYOUT = 2

_FORGED_NAME = re.compile(r"\d+-([a-z_]+)\.png")


class DataError(ValueError):
    """A dataset folder is missing, empty or laid out wrongly."""


@dataclass
class SpecimenItem:
    """One specimen image with its identity.

    Attributes:
        owner: identity key, unique across kinds and sources (e.g. ``"sig:experiment/017#3"``).
        kind: ``"stamp"`` or ``"signature"``.
        genuine: False for a forgery of ``owner``.
        group: hard-negative group (same written name; same authority's forgeries).
        split_key: what the train/held-out split is taken on (writer or authority id).
        source: where it came from (file path or generator call), for reports.
        pixels: ``(H, W, 3)`` uint8 RGB, loaded on first use when ``loader`` is given.
        loader: returns the pixels; lets folders be listed without decoding every image.
        dataset: which data set it belongs to (``"signatures-crossmedia"``, ``"synthetic"``,
            ``"folder:<name>"``); pairs are only formed within one data set, and metrics are
            reported per data set.
        forgery: how a forgery was made when known (a stamp
            :class:`~detectors.synth.stamps.ForgeryKind` value, ``"skilled"``); ``""`` for genuine
            items and forgeries of unknown kind. Skilled EER is also reported per forgery kind,
            because some kinds (a colour photocopy) leave no trace in the mark's shape.
    """

    owner: str
    kind: str
    genuine: bool
    group: str
    split_key: str
    source: str
    pixels: npt.NDArray[np.uint8] | None = None
    loader: Callable[[], npt.NDArray[np.uint8]] | None = field(default=None, repr=False)
    dataset: str = ""
    forgery: str = ""

    def image(self) -> npt.NDArray[np.uint8]:
        """The crop, ``(H, W, 3)`` uint8 RGB, cached after the first call (downscaled to
        :data:`CACHE_LONG_SIDE` on the longest side)."""
        if self.pixels is None:
            if self.loader is None:
                raise DataError(f"item {self.source} has neither pixels nor a loader")
            self.pixels = _shrink(self.loader())
        return self.pixels


# --------------------------------------------------------------------------------------------- splits


def heldout_fraction_of(key: str, salt: str = "similarity-split-v1") -> float:
    """A stable pseudo-random number in ``[0, 1)`` for ``key``: SHA-256 of salt and key.

    ``heldout_fraction_of(key) < 0.2`` puts about a fifth of the keys in the held-out split, the
    same ones on every machine and run, independent of how many other keys exist.
    """
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_items(
    items: Sequence[SpecimenItem], heldout: float = 0.2, salt: str = "similarity-split-v1"
) -> tuple[list[SpecimenItem], list[SpecimenItem]]:
    """``(train, heldout)`` by split key: every writer/authority lies wholly in one of them."""
    if not 0.0 <= heldout <= 1.0:
        raise DataError(f"heldout must be in [0, 1], got {heldout}")
    train: list[SpecimenItem] = []
    test: list[SpecimenItem] = []
    for item in items:
        (test if heldout_fraction_of(item.split_key, salt) < heldout else train).append(item)
    return train, test


# -------------------------------------------------------------------------------------------- sources


def default_signatures_dir() -> Path:
    """``$CV_SIGNATURES_DIR``, else ``../shared/datasets/signatures-crossmedia`` beside the repo."""
    env = os.environ.get(SIGNATURES_DIR_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "datasets" / "signatures-crossmedia"


def load_signature_dataset(root: str | Path | None = None) -> list[SpecimenItem]:
    """List the real cross-media signatures (images decode lazily).

    Layout (see its PROVENANCE.md): ``experiment/<writer>/<k>.png|jpg`` with k = 1..10 on paper and
    k = 11..20 the same ten names on a tablet; ``control/<writer>/<k>.png`` with k and k + 10 the
    same name, both on paper. Owner = (set, writer, name index ``(k - 1) % 10``); group = the name
    index, so same-name-other-writer pairs are hard negatives; split key = (set, writer).

    Raises:
        DataError: the folder does not exist or holds no signature images.
    """
    root = Path(root) if root is not None else default_signatures_dir()
    if not root.is_dir():
        raise DataError(f"signature dataset not found at {root} (set {SIGNATURES_DIR_ENV} to its location)")
    items = []
    for subset in ("experiment", "control"):
        base = root / subset
        if not base.is_dir():
            continue
        for writer_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for path in sorted(writer_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.stem.isdigit():
                    continue
                k = int(path.stem)
                if not 1 <= k <= 20:
                    continue
                name = (k - 1) % 10
                writer = f"{subset}/{writer_dir.name}"
                items.append(
                    SpecimenItem(
                        owner=f"sig:{writer}#{name}",
                        kind="signature",
                        genuine=True,
                        group=f"sig-name:{name}",
                        split_key=f"sig:{writer}",
                        source=str(path),
                        loader=_file_loader(path),
                        dataset="signatures-crossmedia",
                    )
                )
    if not items:
        raise DataError(f"no signature images under {root}/experiment or {root}/control")
    return items


def load_specimen_folder(root: str | Path, kind: str, *, prefix: str = "") -> list[SpecimenItem]:
    """List ``<owner>/genuine/*`` and ``<owner>/forged/*`` images under ``root`` (sorted by name).

    Args:
        root: the folder.
        kind: ``"stamp"`` or ``"signature"``.
        prefix: prepended to owner keys, to keep owners of different sources apart.

    Raises:
        DataError: ``root`` is not a folder or no owner has a genuine image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"specimen folder {root} does not exist")
    items = []
    for owner_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        owner = prefix + owner_dir.name
        for sub, genuine in (("genuine", True), ("forged", False)):
            folder = owner_dir / sub
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    items.append(
                        SpecimenItem(
                            owner=owner,
                            kind=kind,
                            genuine=genuine,
                            group=f"owner:{owner}",
                            split_key=owner,
                            source=str(path),
                            loader=_file_loader(path),
                            dataset=f"folder:{root.name}",
                        )
                    )
    if not any(it.genuine for it in items):
        raise DataError(f"{root} holds no <owner>/genuine/* images")
    return items


def render_specimen_items(
    kind: str,
    owner_ids: Sequence[str],
    *,
    per_owner: int,
    forgeries: int,
    seed: int,
    dpi: float = 200.0,
    cache_dir: str | Path | None = None,
) -> list[SpecimenItem]:
    """Genuine specimens and skilled forgeries from the document generators
    (:func:`detectors.synth.doc_specimens.render_specimen`: the mark on printed paper, scanned,
    cropped with detector-like slack).

    Stamp forgeries cycle through every :class:`~detectors.synth.stamps.ForgeryKind` (altered
    text, proportions, redrawn emblem, other font, photocopy), each owner starting the cycle at a
    place fixed by a hash of its id: with fewer forgeries per owner than kinds, every kind still
    occurs, on a different subset of owners (starting every owner at the first kind left the last
    kinds out of training and evaluation altogether). Signature forgeries are skilled imitations
    (random forgeries need no rendering: other owners' genuine specimens are exactly that). Each
    owner draws from its own generator seeded from ``(seed, kind, owner)``, so adding an owner
    never changes another owner's images.

    Args:
        kind: ``"stamp"`` or ``"signature"``.
        owner_ids: authority or writer ids (any strings; the generators derive everything from them).
        per_owner: genuine specimens per owner.
        forgeries: forged specimens per owner.
        seed: seed of the impressions, forgeries and scans.
        dpi: rendering resolution.
        cache_dir: if given, the crops are written there as ``<owner>/genuine|forged/NN.png`` on the
            first call and read back on later calls with the same arguments (rendering takes
            30-100 ms per crop).

    Returns:
        ``len(owner_ids) * (per_owner + forgeries)`` items.
    """
    params = {
        "kind": kind,
        "owners": list(owner_ids),
        "per_owner": per_owner,
        "forgeries": forgeries,
        "seed": seed,
        "dpi": dpi,
        "layout": RENDER_LAYOUT,
    }
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        if _cache_matches(cache, params):
            return [
                replace(_synthetic(it, kind, it.owner), forgery=_forgery_of_name(Path(it.source).name))
                for it in load_specimen_folder(cache, kind)
            ]
        _clear_cache(cache)

    from detectors.synth.doc_raster import derive_rng
    from detectors.synth.doc_specimens import render_specimen
    from detectors.synth.stamps import FORGERY_KINDS

    cycle = [k.value for k in FORGERY_KINDS] if kind == "stamp" else ["skilled"]
    items = []
    for owner in owner_ids:
        rng = derive_rng("similarity-specimens", seed, kind, owner)
        plan: list[str | None] = [None] * per_owner
        plan += forgery_plan(owner, forgeries, cycle)
        for i, forgery in enumerate(plan):
            crop, _ = render_specimen(kind, owner, forgery, rng, dpi=dpi)  # type: ignore[arg-type]
            sub = "genuine" if forgery is None else "forged"
            name = f"{i:02d}.png" if forgery is None else f"{i:02d}-{forgery}.png"
            if cache is not None:
                folder = cache / owner / sub
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(encode_png(crop))
            item = SpecimenItem(
                owner,
                kind,
                forgery is None,
                "",
                "",
                f"synth {kind} {owner}/{sub}/{name}",
                pixels=_shrink(crop),
                forgery=forgery or "",
            )
            items.append(_synthetic(item, kind, owner))
    if cache is not None:
        (cache / "params.json").write_text(json.dumps(params))
    return items


def forgery_plan(owner: str, forgeries: int, cycle: Sequence[str]) -> list[str]:
    """The forgery kinds rendered for ``owner``: ``forgeries`` consecutive entries of ``cycle``
    (wrapping round), starting at a place fixed by a hash of ``owner``."""
    start = int(heldout_fraction_of(owner, "forgery-cycle") * len(cycle))
    return [cycle[(start + j) % len(cycle)] for j in range(forgeries)]


def _forgery_of_name(name: str) -> str:
    """The forgery kind in a cached crop's file name (``05-photocopy.png`` → ``photocopy``)."""
    match = _FORGED_NAME.fullmatch(name)
    return match.group(1) if match else ""


def _clear_cache(cache: Path) -> None:
    """Remove what an earlier, different call wrote to ``cache`` (its marker and crops), so that
    crops of another layout are never read back beside the new ones. Only a folder with our
    ``params.json`` marker is cleared: a folder without it may be someone's specimen archive."""
    marker = cache / "params.json"
    if not marker.is_file():
        return
    marker.unlink()
    for sub in ("genuine", "forged"):
        for path in cache.glob(f"*/{sub}/*.png"):
            path.unlink()


def _cache_matches(cache: Path, params: dict[str, object]) -> bool:
    """Whether ``cache`` was completely written by a call with the same arguments (``params.json``
    is written last, so an interrupted render never counts as a cache)."""
    marker = cache / "params.json"
    return marker.is_file() and bool(json.loads(marker.read_text()) == params)


def _synthetic(item: SpecimenItem, kind: str, owner: str) -> SpecimenItem:
    """Owner, group and split keys of a generated specimen (one group per owner: its forgeries)."""
    key = f"{kind}:{owner}"
    return replace(item, owner=key, group=f"{key}/forgeries", split_key=key, dataset="synthetic")


def ink_to_rgb(absorb: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Absorbance ``(H, W, 3)`` in ``[0, 1]`` laid on white paper → ``(H, W, 3)`` uint8 RGB."""
    return np.clip((1.0 - absorb) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _file_loader(path: Path) -> Callable[[], npt.NDArray[np.uint8]]:
    return lambda: read_image_file(path)


def _shrink(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    h, w = img.shape[:2]
    s = CACHE_LONG_SIDE / max(h, w)
    if s >= 1.0:
        return np.ascontiguousarray(img)
    small = cv2.resize(img, (max(round(w * s), 1), max(round(h * s), 1)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)


# --------------------------------------------------------------------------------------- augmentation


class ScanAugment:
    """Random scan conditions applied to a uint8 RGB crop, before :func:`preprocess_crops`.

    Each step fires with its own probability: loose or tight detector box (paper margin), rotation
    (±``max_rotation`` degrees), resolution change (down- then up-sampling by up to
    ``max_scale``), pen/stamp-pad width (erode or dilate the ink by one pixel), ink colour (dark
    ink recoloured to blue, black, red or violet), paper tint, Gaussian blur, Gaussian noise,
    JPEG compression (quality 30-90) and greyscale conversion. The magnitudes are those of office
    scanners and phone photos of documents at 150-300 dpi.

    Args:
        strength: 0 disables every step, 1 is the default mix; probabilities scale with it.
        max_rotation: largest rotation in degrees.
        max_scale: largest resolution loss factor (2 = down to half, then back).
    """

    INKS = np.array([[30, 30, 35], [25, 45, 150], [190, 30, 40], [95, 50, 140]], dtype=np.float32)

    def __init__(self, *, strength: float = 1.0, max_rotation: float = 6.0, max_scale: float = 2.0) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        self.strength = strength
        self.max_rotation = max_rotation
        self.max_scale = max_scale

    def __call__(self, img: npt.NDArray[np.uint8], rng: random.Random) -> npt.NDArray[np.uint8]:
        s = self.strength
        if s == 0.0:
            return img
        out = img.astype(np.float32)
        if rng.random() < 0.5 * s:
            out = _pad_paper(out, rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.15))
        if rng.random() < 0.6 * s:
            out = _rotate(out, rng.uniform(-self.max_rotation, self.max_rotation))
        if rng.random() < 0.3 * s:
            out = _stroke_width(out, rng.random() < 0.5)
        if rng.random() < 0.4 * s:
            out = _recolour_ink(out, self.INKS[rng.randrange(len(self.INKS))])
        if rng.random() < 0.4 * s:
            tint = np.array([rng.uniform(0.85, 1.0) for _ in range(3)], dtype=np.float32)
            out = out * tint
        if rng.random() < 0.5 * s:
            f = rng.uniform(1.0, self.max_scale)
            h, w = out.shape[:2]
            small = cv2.resize(out, (max(int(w / f), 8), max(int(h / f), 8)), interpolation=cv2.INTER_AREA)
            out = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        if rng.random() < 0.3 * s:
            out = np.asarray(cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2)), dtype=np.float32)
        if rng.random() < 0.4 * s:
            noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(2.0, 10.0), out.shape)
            out = out + noise.astype(np.float32)
        result = np.clip(out, 0, 255).round().astype(np.uint8)
        if rng.random() < 0.4 * s:
            result = _jpeg(result, rng.randint(30, 90))
        if rng.random() < 0.2 * s:
            grey = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
            result = np.repeat(grey[..., None], 3, axis=2)
        return result


def _pad_paper(img: npt.NDArray[np.float32], fy: float, fx: float) -> npt.NDArray[np.float32]:
    h, w = img.shape[:2]
    py, px = int(h * fy), int(w * fx)
    paper = np.percentile(img.reshape(-1, 3), 90, axis=0)
    padded = cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_CONSTANT, value=paper.tolist())
    return np.asarray(padded, dtype=np.float32)


def _rotate(img: npt.NDArray[np.float32], angle: float) -> npt.NDArray[np.float32]:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    paper = np.percentile(img.reshape(-1, 3), 90, axis=0)
    rotated = cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=paper.tolist())
    return np.asarray(rotated, dtype=np.float32)


def _stroke_width(img: npt.NDArray[np.float32], thicker: bool) -> npt.NDArray[np.float32]:
    kernel = np.ones((2, 2), np.uint8)
    # Ink is dark: thicker strokes = erode the bright paper (min filter), thinner = dilate.
    return np.asarray(cv2.erode(img, kernel) if thicker else cv2.dilate(img, kernel), dtype=np.float32)


def _recolour_ink(img: npt.NDArray[np.float32], ink: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    luma = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    paper = float(np.percentile(luma, 90))
    darkest = float(np.percentile(luma, 1))
    if paper - darkest < 10:
        return img
    # Coverage 0 on paper, 1 on the darkest ink; paper colour kept, ink colour replaced.
    a = np.clip((paper - luma) / (paper - darkest), 0.0, 1.0)[..., None]
    return (1 - a) * paper + a * ink


def _jpeg(img: npt.NDArray[np.uint8], quality: int) -> npt.NDArray[np.uint8]:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# ------------------------------------------------------------------------------------- torch plumbing


class SpecimenDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int, int]]):
    """Items → ``(image (3, H, W) float32, label, claimed)`` through augmentation and the shared
    preprocessing.

    Labels: genuine items get their owner's class index; every forgery gets a unique negative
    label, so it is a negative for all and a positive for none (see
    :class:`similarity.model.BatchHardTripletLoss`). ``claimed`` is the owner index an item is
    presented as: its label for a genuine item, the forged owner's index for a forgery (-1 when
    that owner has no genuine item here). It lets :class:`similarity.model.OwnForgeryLoss` set a
    forgery against the genuine specimens of the very owner it imitates.

    Args:
        items: the specimens.
        spec: model spec (input size, normalisation).
        augment: applied to every image; ``None`` for evaluation.
        seed: seeds the augmentation; sample ``i`` at epoch ``e`` gets the same augmentation
            on every run (the RNG is keyed by ``(seed, index, draw counter)``).
    """

    def __init__(
        self, items: Sequence[SpecimenItem], spec: ModelSpec, *, augment: ScanAugment | None = None, seed: int = 0
    ) -> None:
        self.items = list(items)
        self.spec = spec
        self.augment = augment
        self.seed = seed
        owners = sorted({it.owner for it in self.items if it.genuine})
        self.owner_index = {o: i for i, o in enumerate(owners)}
        self.labels = [self.owner_index[it.owner] if it.genuine else -(i + 1) for i, it in enumerate(self.items)]
        self.claimed = [self.owner_index.get(it.owner, -1) for it in self.items]
        self._draws = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        img = self.items[index].image()
        if self.augment is not None:
            self._draws += 1
            img = self.augment(img, random.Random(f"{self.seed}/{index}/{self._draws}"))
        x = preprocess_crops([img], self.spec)[0]
        return torch.from_numpy(x), self.labels[index], self.claimed[index]


class PKBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of P owners x K genuine images, plus hard negatives, for batch-hard mining.

    Half of each batch's owners are drawn in *groups* (several owners sharing a group: the same
    name by different writers), so same-name-other-writer negatives occur in every batch; the rest
    are drawn uniformly. Then up to ``forgeries`` forged items of the batch's owners are added.
    Owners with fewer than K genuine images repeat one (the augmentation makes the copies differ).

    Args:
        items: the dataset's items (indices refer to this sequence).
        p: owners per batch.
        k: genuine images per owner.
        forgeries: forged items added per batch.
        batches: batches per epoch.
        seed: the sampler's seed; epoch ``e`` uses ``seed + e`` (see :meth:`set_epoch`).
    """

    def __init__(
        self,
        items: Sequence[SpecimenItem],
        *,
        p: int,
        k: int = 2,
        forgeries: int = 0,
        batches: int,
        seed: int = 0,
    ) -> None:
        if p < 2 or k < 2 or batches < 1 or forgeries < 0:
            raise ValueError(f"need p >= 2, k >= 2, batches >= 1, forgeries >= 0; got {p}, {k}, {batches}, {forgeries}")
        self.p, self.k, self.forgeries, self.batches, self.seed = p, k, forgeries, batches, seed
        self.epoch = 0
        self.genuine: dict[str, list[int]] = defaultdict(list)
        self.forged: dict[str, list[int]] = defaultdict(list)
        self.group_owners: dict[str, list[str]] = defaultdict(list)
        for i, it in enumerate(items):
            (self.genuine if it.genuine else self.forged)[it.owner].append(i)
        for owner, idx in self.genuine.items():
            self.group_owners[items[idx[0]].group].append(owner)
        self.owners = sorted(self.genuine)
        self.groups = sorted(g for g, owners in self.group_owners.items() if len(owners) > 1)
        if len(self.owners) < 2:
            raise DataError(f"need genuine images of at least 2 owners to form batches, got {len(self.owners)}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        p = min(self.p, len(self.owners))
        for _ in range(self.batches):
            chosen: list[str] = []
            seen: set[str] = set()
            tries = 0
            while self.groups and len(chosen) < p // 2 and tries < 10 * p:
                tries += 1
                members = self.group_owners[rng.choice(self.groups)]
                for owner in rng.sample(members, min(len(members), 4, p // 2 - len(chosen))):
                    if owner not in seen:
                        seen.add(owner)
                        chosen.append(owner)
            while len(chosen) < p:
                owner = rng.choice(self.owners)
                if owner not in seen:
                    seen.add(owner)
                    chosen.append(owner)
            batch: list[int] = []
            for owner in chosen:
                idx = self.genuine[owner]
                picks = rng.sample(idx, self.k) if len(idx) >= self.k else [rng.choice(idx) for _ in range(self.k)]
                batch.extend(picks)
            fakes = [i for owner in chosen for i in self.forged.get(owner, ())]
            if fakes and self.forgeries:
                batch.extend(rng.sample(fakes, min(self.forgeries, len(fakes))))
            yield batch


def owners_of(items: Sequence[SpecimenItem]) -> list[str]:
    """Distinct owners with at least one genuine item, sorted."""
    return sorted({it.owner for it in items if it.genuine})


def count_summary(items: Sequence[SpecimenItem]) -> dict[str, int]:
    """Counts for a model card: owners, split keys, genuine and forged images."""
    return {
        "owners": len(owners_of(items)),
        "writers_or_authorities": len({it.split_key for it in items}),
        "genuine_images": sum(it.genuine for it in items),
        "forged_images": sum(not it.genuine for it in items),
    }
