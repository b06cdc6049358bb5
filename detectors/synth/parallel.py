"""Running generator jobs in worker processes, with output identical to a single process.

Every synthetic dataset is a list of independent jobs (a chunk of image indices, each image
seeded by ``(seed, index)``), so results do not depend on the worker count as long as they are
collected in job order, which :func:`map_jobs` guarantees.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import cv2

J = TypeVar("J")
R = TypeVar("R")


def _init_worker() -> None:
    # One OpenCV thread per worker process: K workers should use K cores, not K x all cores.
    cv2.setNumThreads(1)


def map_jobs(fn: Callable[[J], R], jobs: Sequence[J], *, workers: int) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in job order.

    Args:
        fn: a picklable top-level function.
        jobs: picklable job descriptions.
        workers: processes to use; 1 (or a single job) runs in this process.
    """
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    # "spawn", not fork: forking a process whose OpenCV/BLAS thread pools are running can hang.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_init_worker, mp_context=ctx) as pool:
        yield from pool.map(fn, jobs)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, keys sorted, UTF-8 (Hangul kept readable)."""
    with path.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
