"""``customs-vision synth tip``: project synthetic threats into real bag scans (TIP), YOLO dataset."""

from __future__ import annotations

import argparse
import sys

from service.cli import CommandGroups


def _count_range(text: str) -> tuple[int, int]:
    """``"2"`` -> (2, 2), ``"1-3"`` -> (1, 3)."""
    parts = text.split("-")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LO-HI such as 1-3, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"expected N or LO-HI with 0 <= LO <= HI, got {text!r}")
    return values[0], values[1]


def register(groups: CommandGroups) -> None:
    p = groups.synth.add_parser(
        "tip",
        help="project synthetic threats into real X-ray bag scans (Threat Image Projection, YOLO dataset)",
        description="Threat Image Projection: draw synthetic threats (handguns, ammunition, drugs, gold, "
        "cash, knives, scissors) with the dual-energy generator and composite them in the log domain into "
        "the real scans of --backgrounds, keeping each scan's own label (remapped to 'knife'). Only the real "
        "train split is used as backgrounds; val and test scans are never read. Writes images/, labels/, "
        "data.yaml, metadata.jsonl and palette.png under --out. The output depends only on --seed, --count, "
        "the backgrounds and the options, never on --workers.",
    )
    p.add_argument("--backgrounds", required=True, help="real X-ray folder with images/ and labels/ (read only)")
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--count", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--threats-per-image",
        type=_count_range,
        default=(1, 3),
        metavar="LO-HI",
        help="threats tried per image, e.g. 2 or 1-3 (default 1-3)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of images in val (default 0.1)")
    p.add_argument(
        "--calibration-images",
        type=int,
        default=120,
        help="backgrounds the display palette is calibrated on; 0 keeps the generator's (default 120)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a dataset")
    p.set_defaults(func=_synth_tip)


def _synth_tip(args: argparse.Namespace) -> int:
    from detectors.synth.tip import TipError
    from detectors.synth.tip_dataset import write_tip_dataset

    def progress(done: int, total: int) -> None:
        if done == total or done % 500 < 8:
            print(f"  {done}/{total} images", file=sys.stderr, flush=True)

    try:
        summary = write_tip_dataset(
            args.backgrounds,
            args.out,
            args.count,
            args.seed,
            threats_per_image=args.threats_per_image,
            val_fraction=args.val_fraction,
            calibration_images=args.calibration_images,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=progress,
        )
    except (TipError, FileExistsError) as exc:
        print(f"customs-vision synth tip: {exc}", file=sys.stderr)
        return 2
    per_image = summary.seconds / max(summary.images, 1)
    print(
        f"wrote {summary.images} images ({summary.train} train, {summary.val} val) on {summary.backgrounds} real "
        f"train-split backgrounds to {summary.root} in {summary.seconds:.1f} s ({per_image:.3f} s/image)"
    )
    print(
        f"projected threats: {summary.projected}; concealment: "
        + ", ".join(f"{k}={v}" for k, v in summary.concealment.items())
    )
    print("objects per class: " + ", ".join(f"{k}={v}" for k, v in summary.objects_per_class.items()))
    return 0
