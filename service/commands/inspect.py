"""``customs-vision inspect xray|document PATH...``: run a detector over image files and folders.

Writes one result per image to stdout, as JSON lines (default) or a table, in the order the images
were found; a summary goes to stderr. Images are decoded and sent to the model in batches of
``--batch``. A file that cannot be decoded gets an ``{"image", "error"}`` line and the run goes on.

Exit codes: 0 every image was inspected, 1 some images failed, 2 nothing could be run (missing or
changed model, no images found, model failure).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from service.cli import CommandGroups

if TYPE_CHECKING:
    from detectors.base import YoloDetector
    from service.settings import Settings
    from vision.types import InspectionReport, Modality

#: File suffixes picked up when a PATH is a folder (explicitly named files are tried whatever their name).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

EXIT_OK, EXIT_SOME_FAILED, EXIT_CANNOT_RUN = 0, 1, 2

_MODALITIES: dict[Modality, str] = {
    "xray": "X-ray scans: threat detection with a clear/review/alarm risk level per scan",
    "document": "document images: stamp and signature detection",
}


def register(groups: CommandGroups) -> None:
    for modality, description in _MODALITIES.items():
        p = groups.inspect.add_parser(
            modality,
            help=description,
            description=f"Inspect {description}. Prints one JSON line (or table row) per image.",
            epilog="exit status: 0 all images inspected, 1 some images could not be read, "
            "2 nothing could be run (model missing or changed, no images)",
        )
        p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
        p.add_argument("--format", choices=("jsonl", "table"), default="jsonl", help="output format")
        p.add_argument("--annotate", type=Path, metavar="OUTDIR", help="write OUTDIR/<stem>.jpg with boxes drawn")
        p.add_argument(
            "--model",
            type=Path,
            metavar="CARD",
            help=f"model card JSON (default: <models dir>/{modality}.json; models dir from CV_MODELS_DIR, "
            "else the checkout's models/)",
        )
        p.add_argument("--batch", type=_positive_int, default=8, help="images per model call (default 8)")
        p.add_argument(
            "--conf",
            type=_probability,
            default=None,
            help="one confidence threshold for every class (default: "
            + ("each class's review threshold from the risk table)" if modality == "xray" else "0.25)"),
        )
        p.add_argument("--threads", type=_positive_int, default=None, help="ONNX Runtime intra-op threads")
        if modality == "xray":
            p.add_argument(
                "--no-flip-tta",
                dest="flip_tta",
                action="store_false",
                default=None,
                help="do not also run each scan mirrored (default: CV_XRAY_FLIP_TTA, on)",
            )
            p.add_argument(
                "--no-tiles",
                dest="tile_tta",
                action="store_false",
                default=None,
                help="do not also run four close-up tiles of each scan (default: CV_XRAY_TILES, on)",
            )
        p.set_defaults(func=_handler(modality))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def _handler(modality: Modality) -> Any:
    def handle(args: argparse.Namespace) -> int:
        return run_inspect(args, modality)

    return handle


@dataclass
class _Result:
    """What is printed for one image: a report or an error message."""

    path: str
    report: InspectionReport | None = None
    error: str | None = None
    annotated: str | None = None


def run_inspect(args: argparse.Namespace, modality: Modality, out: TextIO | None = None) -> int:
    """Run ``inspect <modality>`` with parsed arguments; return the exit status."""
    from detectors.catalog import detector_class
    from detectors.yolo import YoloOutputError
    from service.settings import Settings
    from vision.modelcard import ModelCardError
    from vision.runtime.base import BackendError

    out = out or sys.stdout
    try:
        settings = Settings()
    except ValueError as e:  # pydantic's ValidationError: a malformed CV_* variable
        _fail(f"invalid settings in the environment: {e}")
        return EXIT_CANNOT_RUN
    card_path = args.model if args.model is not None else settings.models_dir / f"{modality}.json"
    threads = args.threads if args.threads is not None else settings.threads
    backend_kwargs: dict[str, Any] = {} if threads is None else {"threads": threads}
    detector_kwargs: dict[str, Any] = {}
    if args.conf is not None:
        # One threshold for every class: drop the X-ray per-class defaults.
        detector_kwargs = {"conf_threshold": args.conf, "class_thresholds": {}}
    if modality == "xray":
        flip_tta = getattr(args, "flip_tta", None)
        detector_kwargs["flip_tta"] = settings.xray_flip_tta if flip_tta is None else flip_tta
        tile_tta = getattr(args, "tile_tta", None)
        detector_kwargs["tile_tta"] = settings.xray_tiles if tile_tta is None else tile_tta
    detector_cls = detector_class(modality)
    try:
        detector = detector_cls.from_card(card_path, detector_kwargs=detector_kwargs, **backend_kwargs)
    except (ModelCardError, BackendError, ValueError) as e:
        hint = "" if args.model is not None else "; pass --model CARD or set CV_MODELS_DIR"
        _fail(f"cannot load the {modality} model from {card_path}: {e}{hint}")
        return EXIT_CANNOT_RUN

    paths = list(collect_images(args.paths))
    if not paths:
        _fail(f"no images found in {' '.join(map(str, args.paths))} (suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
        return EXIT_CANNOT_RUN
    if args.annotate is not None:
        try:
            args.annotate.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            _fail(f"cannot create annotation folder {args.annotate}: {e}")
            return EXIT_CANNOT_RUN

    writer = _TableWriter(out, paths) if args.format == "table" else _JsonlWriter(out, modality)
    names = _AnnotationNames(args.annotate) if args.annotate is not None else None
    started = time.perf_counter()
    failed = 0
    model_ms = 0.0
    try:
        for chunk in _chunks(paths, args.batch):
            results, batch_model_ms = _inspect_chunk(detector, chunk, modality, settings, names)
            model_ms += batch_model_ms
            for result in results:
                failed += result.error is not None
                writer.write(result)
            out.flush()
    except (BackendError, YoloOutputError) as e:
        _fail(f"the {modality} model failed: {e}")
        return EXIT_CANNOT_RUN
    except OSError as e:  # reading images is handled per file, so this is writing an annotation
        _fail(f"cannot write to {args.annotate}: {e}")
        return EXIT_CANNOT_RUN
    finally:
        detector.backend.close()

    elapsed = time.perf_counter() - started
    done = len(paths) - failed
    print(
        f"inspected {done} of {len(paths)} images ({failed} failed) in {elapsed:.2f} s; "
        f"model time {model_ms / max(done, 1):.1f} ms per image ({detector.spec.name}@{detector.spec.version})",
        file=sys.stderr,
    )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def collect_images(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand PATH arguments: files as given, folders recursively (image suffixes, sorted), no repeats.

    A PATH that does not exist is yielded as is, so it is reported as a failed image.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found = [path]
        for p in found:
            if p not in seen:
                seen.add(p)
                yield p


def _chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _inspect_chunk(
    detector: YoloDetector,
    paths: Sequence[Path],
    modality: Modality,
    settings: Settings,
    names: _AnnotationNames | None,
) -> tuple[list[_Result], float]:
    """Decode a chunk of files, run one batched inspection, annotate; results in path order."""
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.types import ImageRecord

    results = [_Result(path=str(p)) for p in paths]
    records, slots = [], []
    for i, path in enumerate(paths):
        try:
            pixels = read_image_file(path, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        except ImageDecodeError as e:
            results[i].error = str(e)
            continue
        except OSError as e:
            results[i].error = f"cannot read file: {e.strerror or e}"
            continue
        records.append(ImageRecord(id=str(path), pixels=pixels, modality=modality, source={"path": str(path)}))
        slots.append(i)
    if not records:
        return results, 0.0
    reports = detector.inspect_batch(records)
    for i, record, report in zip(slots, records, reports, strict=True):
        results[i].report = report
        if names is not None:
            results[i].annotated = str(_write_annotation(record.pixels, report, names.next(paths[i])))
    return results, detector.last_timings.model_ms


def _write_annotation(pixels: Any, report: InspectionReport, target: Path) -> Path:
    from detectors.annotate import annotate
    from vision.imageio import encode_jpeg

    target.write_bytes(encode_jpeg(annotate(pixels, report.detections), quality=90))
    return target


class _AnnotationNames:
    """``OUTDIR/<stem>.jpg``; a stem seen before in this run gets ``-2``, ``-3``, ... appended."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.used: set[str] = set()

    def next(self, image: Path) -> Path:
        stem, n = image.stem, 1
        name = stem
        while name in self.used:
            n += 1
            name = f"{stem}-{n}"
        self.used.add(name)
        return self.outdir / f"{name}.jpg"


def result_to_json(result: _Result, modality: str) -> dict[str, Any]:
    """The JSON object printed for one image (see the module docstring)."""
    if result.report is None:
        return {"image": result.path, "error": result.error}
    det = result.report.detections
    line: dict[str, Any] = {
        "image": result.path,
        "detections": [
            {"label": label, "confidence": round(conf, 4), "box": [round(v, 1) for v in box]}
            for label, conf, box in zip(det.labels, det.confidence.tolist(), det.xyxy.tolist(), strict=True)
        ],
    }
    if modality == "xray":
        line["risk"] = result.report.risk
    if result.annotated is not None:
        line["annotated"] = result.annotated
    return line


class _JsonlWriter:
    def __init__(self, out: TextIO, modality: str) -> None:
        self.out, self.modality = out, modality

    def write(self, result: _Result) -> None:
        self.out.write(json.dumps(result_to_json(result, self.modality), ensure_ascii=False) + "\n")


class _TableWriter:
    """Fixed-width rows: image, status (risk, ``ok`` or ``ERROR``), detections or the error."""

    def __init__(self, out: TextIO, paths: Sequence[Path]) -> None:
        self.out = out
        self.width = min(max(len(str(p)) for p in paths), 60)
        out.write(f"{'IMAGE':<{self.width}}  {'STATUS':<6}  DETECTIONS\n")

    def write(self, result: _Result) -> None:
        path = result.path if len(result.path) <= self.width else "..." + result.path[-(self.width - 3) :]
        if result.report is None:
            status, detail = "ERROR", str(result.error)
        else:
            det = result.report.detections
            status = result.report.risk or "ok"
            detail = (
                "; ".join(
                    f"{label} {conf:.2f} [{', '.join(f'{v:.0f}' for v in box)}]"
                    for label, conf, box in zip(det.labels, det.confidence.tolist(), det.xyxy.tolist(), strict=True)
                )
                or "-"
            )
        self.out.write(f"{path:<{self.width}}  {status:<6}  {detail}\n")


def _fail(message: str) -> None:
    print(f"customs-vision inspect: error: {message}", file=sys.stderr)
