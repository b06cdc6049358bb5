"""The ``customs-vision`` command line.

Each command lives in its own module under ``service/commands/`` exposing
``register(groups: CommandGroups) -> None``; this file only assembles them. Heavy imports (torch,
ultralytics, onnxruntime) happen inside the command handlers so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

# Explicit list of command modules, in --help order. A module listed here must exist.
COMMAND_MODULES: tuple[str, ...] = (
    "service.commands.serve",
    "service.commands.synth_xray",
    "service.commands.synth_tip",
    "service.commands.synth_documents",
    "service.commands.synth_samples",
    "service.commands.admin",
    "service.commands.inspect",
    "service.commands.train",
    "service.commands.evaluate_detector",
    "service.commands.similarity",
    "service.commands.calibrate",
    "service.commands.deploy",
    "service.commands.quantize",
)


@dataclass
class CommandGroups:
    """Where a command module adds its sub-parsers.

    ``root`` holds top-level commands (``serve``); the others hold ``synth xray``,
    ``train xray``, ``inspect xray``, ``evaluate similarity`` and so on.
    """

    root: argparse._SubParsersAction
    synth: argparse._SubParsersAction
    train: argparse._SubParsersAction
    inspect: argparse._SubParsersAction
    evaluate: argparse._SubParsersAction


def fail(message: str, status: int) -> int:
    """Print ``error: message`` to stderr and return ``status`` (a command's exit code)."""
    print(f"error: {message}", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customs-vision",
        description="Customs X-ray threat detection and document stamp/signature verification.",
    )
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        p = root.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest=f"{name}_what", metavar="WHAT", required=True)

    groups = CommandGroups(
        root=root,
        synth=group("synth", "generate synthetic training data (X-ray scans, documents, specimens)"),
        train=group("train", "train a model and write models/<name>.onnx with its model card"),
        inspect=group("inspect", "run a detector over image files or folders"),
        evaluate=group("evaluate", "measure a model on labelled data"),
    )
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
