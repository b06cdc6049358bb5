"""What every benchmark script shares: the machine description, timing loops, percentiles, result files, plots.

Every result file a script writes is self-describing: :func:`result_document` puts the machine
(:func:`machine_description`: CPU model and flags, cores, RAM, OS, Python, package versions, GPU,
date, git commit and whether the tree was dirty, load average when the run started) and the exact
command line next to the numbers, so a figure can be traced to the run that produced it and
compared only with runs on a like machine.

Latency percentiles use numpy's default (linear interpolation between order statistics); with fewer
than 100 samples p99 is close to the maximum, and the sample count is always written beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "PACKAGES",
    "REPO_ROOT",
    "RESULTS_DIR",
    "Panel",
    "TimedCalls",
    "csv_floats",
    "csv_ints",
    "csv_words",
    "latency_summary",
    "machine_description",
    "plot_panels",
    "result_document",
    "time_calls",
    "write_csv",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where results are committed.
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
#: Distributions whose versions are recorded with every result (absent ones are recorded as ``None``).
PACKAGES: tuple[str, ...] = (
    "numpy",
    "onnx",
    "onnxruntime",
    "openvino",
    "opencv-python",
    "pillow",
    "torch",
    "torchvision",
    "ultralytics",
    "tensorrt",
    "tritonclient",
    "fastapi",
    "uvicorn",
    "httpx",
    "sqlalchemy",
    "psycopg",
)
#: Environment variables that set thread counts of the numeric libraries.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ORT_NUM_THREADS")
#: CPU feature flags that decide which fast paths (INT8 VNNI, bf16, AMX) ONNX Runtime can take.
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


# ------------------------------------------------------------------------------- machine description


def machine_description() -> dict[str, Any]:
    """Describe this machine and checkout; call it when the run starts (it records the load average).

    Returns:
        JSON-safe dict: ``cpu``, ``cpu_flags``, ``cpu_cores`` (usable by this process),
        ``cpu_count`` (online), ``ram_gib``, ``os``, ``python``, ``packages`` (distribution ->
        version or ``None``), ``gpu`` (``nvidia-smi`` names, or ``None``), ``date`` (UTC, ISO 8601),
        ``git`` (``commit``, ``dirty``), ``load_average`` (1, 5, 15 minutes), ``blas`` (numpy's BLAS
        library) and ``thread_env`` (the thread-count variables set, e.g. ``OPENBLAS_NUM_THREADS``:
        a multi-threaded BLAS on a busy machine can make one matrix-vector product wait for a
        descheduled thread, so they are part of what was measured).
    """
    cpu, flags = _cpu_model_and_flags()
    return {
        "cpu": cpu,
        "cpu_flags": [f for f in _CPU_FLAGS if f in flags],
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in PACKAGES},
        "gpu": _gpus(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git_state(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "blas": _blas(),
        "thread_env": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
    }


def _blas() -> str | None:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except (KeyError, TypeError, ValueError):
        return None


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    cpu: str | None = None
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu is None:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return cpu or platform.processor() or platform.machine(), flags


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)  # the file counts KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _gpus() -> list[str] | None:
    # nvidia-smi rather than torch.cuda: describing the machine must not import (or initialise) CUDA.
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()] or None


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=20, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def result_document(benchmark: str, args: Mapping[str, Any], machine: Mapping[str, Any], **sections: Any) -> dict:
    """The top level of a result JSON: what ran, on what, with which options, then the sections.

    Args:
        benchmark: script name, e.g. ``"throughput"``.
        args: the parsed options (``vars(args)``); paths and other objects are written as strings.
        machine: :func:`machine_description`, taken when the run started.
        **sections: the results: lists and dicts of numbers, strings, booleans and ``None``; paths
            and other objects are written as strings (paths inside the checkout relative to it).
    """
    return {
        "benchmark": benchmark,
        "command": f"python -m benchmarks.{benchmark} {shlex.join(sys.argv[1:])}".rstrip(),
        "args": {k: _jsonable(v) for k, v in args.items()},
        "machine": dict(machine),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        **{name: _jsonable(value) for name, value in sections.items()},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        # Paths inside the checkout are written relative to it, so committed results carry no home folders.
        return str(value.resolve().relative_to(REPO_ROOT)) if value.resolve().is_relative_to(REPO_ROOT) else str(value)
    return str(value)


# -------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class TimedCalls:
    """Outcome of :func:`time_calls`.

    Attributes:
        seconds: wall time of each timed call, in call order.
        capped: the time cap ended the loop before the requested number of calls.
        wall_s: wall time of the timed calls together (warm-up excluded).
    """

    seconds: list[float] = field(default_factory=list)
    capped: bool = False
    wall_s: float = 0.0


def time_calls(call: Callable[[int], object], *, warmup: int, iterations: int, time_cap_s: float) -> TimedCalls:
    """Time ``call(i)``: ``warmup`` untimed calls, then up to ``iterations`` timed ones.

    The timed loop stops early once ``time_cap_s`` seconds have passed since it began (the call in
    progress finishes; at least one call is always timed). Warm-up calls receive indices
    ``0 .. warmup-1`` and timed calls continue from ``warmup``, so a caller that picks its inputs by
    index does not time the inputs it warmed up on.

    Raises:
        ValueError: ``warmup < 0``, ``iterations < 1`` or ``time_cap_s <= 0``.
    """
    if warmup < 0 or iterations < 1 or time_cap_s <= 0:
        raise ValueError(f"need warmup >= 0, iterations >= 1, time_cap_s > 0; got {warmup}, {iterations}, {time_cap_s}")
    for i in range(warmup):
        call(i)
    seconds: list[float] = []
    start = time.perf_counter()
    for i in range(iterations):
        t0 = time.perf_counter()
        call(warmup + i)
        t1 = time.perf_counter()
        seconds.append(t1 - t0)
        if t1 - start >= time_cap_s and i + 1 < iterations:
            return TimedCalls(seconds, capped=True, wall_s=t1 - start)
    return TimedCalls(seconds, capped=False, wall_s=time.perf_counter() - start)


def latency_summary(seconds: Sequence[float], prefix: str = "latency_ms_") -> dict[str, float | int | None]:
    """p50/p95/p99/mean/max of durations, in milliseconds rounded to 3 decimals, plus the count.

    Args:
        seconds: durations in seconds (may be empty: every statistic is then ``None``).
        prefix: key prefix, e.g. ``"latency_ms_"`` -> ``latency_ms_p50``.

    Returns:
        ``{prefix+"p50", prefix+"p95", prefix+"p99", prefix+"mean", prefix+"max", "samples"}``.
    """
    keys = ("p50", "p95", "p99", "mean", "max")
    if len(seconds) == 0:
        return {**{prefix + k: None for k in keys}, "samples": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    values = (p50, p95, p99, ms.mean(), ms.max())
    return {**{prefix + k: round(float(v), 3) for k, v in zip(keys, values, strict=True)}, "samples": int(ms.size)}


# -------------------------------------------------------------------------------------- option types


def csv_ints(text: str) -> list[int]:
    """Parse ``"1,2,4"`` into ``[1, 2, 4]`` (argparse ``type=``); each value must be >= 1.

    Raises:
        argparse.ArgumentTypeError: not a list of integers >= 1 (argparse prints the message).
    """
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def csv_floats(text: str) -> list[float]:
    """Parse ``"0.5,2"`` into ``[0.5, 2.0]`` (argparse ``type=``)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return values


def csv_words(text: str) -> list[str]:
    """Parse ``"on, off"`` into ``["on", "off"]`` (argparse ``type=``)."""
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return values


# -------------------------------------------------------------------------------------- result files


def write_json(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as indented UTF-8 JSON (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows as CSV; the header is the union of the rows' keys in first-seen order.

    Nested values (dicts, lists) are written as JSON text; missing values as empty cells.
    """
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v for k, v in row.items()})
    return path


# ------------------------------------------------------------------------------------------- plotting


@dataclass(frozen=True)
class Panel:
    """One chart of a figure: named series of ``(x, y)`` points.

    Attributes:
        title: the chart's title.
        xlabel: x-axis label.
        ylabel: y-axis label.
        series: label -> ``(xs, ys)``; a ``None`` y leaves a gap.
        xscale: ``"log2"`` (batch sizes, concurrency levels: ticks at the x values), ``"log10"`` or
            ``"linear"``.
        dashed: labels drawn dashed (e.g. model-only next to end-to-end).
        groups: label -> group; series of one group share a colour (e.g. one backend's two modes).
        log_y: logarithmic y-axis (values spanning orders of magnitude).
    """

    title: str
    xlabel: str
    ylabel: str
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]]
    xscale: Literal["log2", "log10", "linear"] = "log2"
    dashed: Iterable[str] = ()
    groups: Mapping[str, str] = field(default_factory=dict)
    log_y: bool = False


def plot_panels(path: Path, panels: Sequence[Panel], *, title: str) -> Path:
    """Draw panels side by side into a PNG with matplotlib's non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels, strict=True):
        dashed = set(panel.dashed)
        colours: dict[str, str] = {}
        for label, (xs, ys) in panel.series.items():
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if not points:
                continue
            group = panel.groups.get(label, label)
            colour = colours.setdefault(group, palette[len(colours) % len(palette)])
            px, py = zip(*points, strict=True)
            ax.plot(px, py, marker="o", color=colour, linestyle="--" if label in dashed else "-", label=label)
        if panel.log_y:
            ax.set_yscale("log")
        if panel.xscale == "log2":
            ax.set_xscale("log", base=2)
            ticks = sorted({x for xs, _ in panel.series.values() for x in xs})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        elif panel.xscale == "log10":
            ax.set_xscale("log", base=10)
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
        if panel.series:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
