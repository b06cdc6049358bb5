"""``customs-vision synth xray``: write a synthetic dual-energy X-ray dataset in YOLO format."""

from __future__ import annotations

import argparse
import sys

from service.cli import CommandGroups


def register(groups: CommandGroups) -> None:
    p = groups.synth.add_parser(
        "xray",
        help="generate synthetic X-ray baggage scans with labelled threats (YOLO dataset)",
        description="Generate physically based dual-energy (and some single-energy) X-ray scans of "
        "bags, suitcases, trays and parcels with labelled threats, and write images/, labels/, "
        "data.yaml and metadata.jsonl under --out. The output depends only on --seed, --count and "
        "the options, never on --workers.",
    )
    p.add_argument("--out", required=True, help="dataset folder to create")
    p.add_argument("--count", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", default="640", help="image size: 640 or WxH such as 640x480 (default 640)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of images in val (default 0.1)")
    p.add_argument(
        "--greyscale-fraction", type=float, default=0.15, help="share of single-energy greyscale scans (default 0.15)"
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--format", dest="image_format", choices=["jpg", "png"], default="jpg", help="image format (default jpg)"
    )
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a dataset")
    p.set_defaults(func=_synth_xray)


def _synth_xray(args: argparse.Namespace) -> int:
    from detectors.synth.xray_dataset import write_dataset

    def progress(done: int, total: int) -> None:
        if done == total or done % 500 < 8:
            print(f"  {done}/{total} images", file=sys.stderr, flush=True)

    try:
        summary = write_dataset(
            args.out,
            args.count,
            args.seed,
            size=args.size,
            val_fraction=args.val_fraction,
            greyscale_fraction=args.greyscale_fraction,
            workers=args.workers,
            image_format=args.image_format,
            overwrite=args.overwrite,
            progress=progress,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"customs-vision synth xray: {exc}", file=sys.stderr)
        return 2
    per_image = summary.seconds / max(summary.images, 1)
    print(
        f"wrote {summary.images} images ({summary.train} train, {summary.val} val, "
        f"{summary.greyscale} greyscale) to {summary.root} in {summary.seconds:.1f} s ({per_image:.3f} s/image)"
    )
    print("objects per class: " + ", ".join(f"{k}={v}" for k, v in summary.objects_per_class.items()))
    print("concealment: " + ", ".join(f"{k}={v}" for k, v in summary.concealment.items()))
    return 0
