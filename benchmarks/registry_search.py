"""Specimen registry at scale: enrolment rate, start-up (index load) time, 1:N identify and 1:1 verify latency.

What it does, growing one registry through ``--sizes`` (default 1,000, 10,000 and 100,000 specimens):

1. **Enrol** synthetic specimens with :meth:`SpecimenRegistry.add_many` in transactions of
   ``--chunk``. Owner ``o`` has ``--per-owner`` specimens; each embedding is the owner's random
   unit centre plus Gaussian noise of relative size ``--spread`` (cosine with the centre about
   ``1 / sqrt(1 + spread**2)``), renormalised. Each row keeps a tiny 8 x 8 placeholder PNG: the
   images of a real registry are larger, which makes enrolment slower but does not touch search.
2. **Reopen** the registry (a new :class:`SpecimenRegistry` on the same database): the time to load
   the search index from the table is what a service restart pays.
3. **Identify** (1:N, top ``--top-k`` owners) and **verify** (1:1 against the true owner's
   specimens) ``--queries`` fresh noisy queries of enrolled owners, one call at a time, each timed.
   Recall@1 and recall@k of identify are recorded as a sanity check that the search searched (random
   128-d centres are nearly orthogonal, so they should be ~1.0; they say nothing about the model).

The measured calls are the registry's own, database included; the queries themselves are served from
the in-memory index. Writes ``registry_search.json``/``.csv`` (one row per size and operation) and
``registry_search.png`` (latency against registry size).

The default database is a throw-away SQLite file in a temporary folder. ``--database-url`` points
it at PostgreSQL (or any SQLAlchemy URL): the database must not hold specimens already, and the rows
the run added are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.common import (
    RESULTS_DIR,
    Panel,
    csv_ints,
    latency_summary,
    machine_description,
    plot_panels,
    result_document,
    write_csv,
    write_json,
)

#: Embedding length of the shipped similarity model (``models/similarity.onnx``: ``(B, 128)``).
DEFAULT_DIM = 128
#: The registry's table (see :mod:`similarity.registry`); reflected to delete a run's rows.
SPECIMEN_TABLE = "similarity_specimens"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure specimen-registry enrolment, index load, 1:N identify and 1:1 verify latency.",
    )
    parser.add_argument("--sizes", type=csv_ints, default=[1_000, 10_000, 100_000], help="registry sizes measured")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM, help="embedding length")
    parser.add_argument("--kind", choices=("signature", "stamp"), default="signature")
    parser.add_argument("--per-owner", type=int, default=4, help="specimens per owner")
    parser.add_argument("--spread", type=float, default=0.5, help="specimen noise relative to the owner centre")
    parser.add_argument("--queries", type=int, default=500, help="identify and verify calls timed per size")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=5_000, help="specimens per enrolment transaction")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL; default: temporary SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the enrolled rows in --database-url")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="registry_search", help="result file stem")
    parser.add_argument("--no-plot", action="store_true")
    return parser


class Population:
    """Seeded synthetic owners and their specimen/query embeddings.

    Args:
        owners: number of owners.
        dim: embedding length D.
        spread: noise scale relative to a unit centre.
        seed: seed of the centres (specimens and queries draw from their own streams).
    """

    def __init__(self, *, owners: int, dim: int, spread: float, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        self.centres = _unit_rows(rng.standard_normal((owners, dim)).astype(np.float32))
        self.spread = spread
        self._specimen_rng = np.random.default_rng([seed, 1])
        self._query_rng = np.random.default_rng([seed, 2])

    def specimens(self, owner_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """``(len(owner_ids), D)`` unit float32 embeddings near the owners' centres."""
        return self._noisy(owner_ids, self._specimen_rng)

    def queries(self, owner_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Fresh noisy embeddings of the given owners (never equal to a registered one)."""
        return self._noisy(owner_ids, self._query_rng)

    def _noisy(self, owner_ids: npt.NDArray[np.int64], rng: np.random.Generator) -> npt.NDArray[np.float32]:
        dim = self.centres.shape[1]
        noise = rng.standard_normal((len(owner_ids), dim)).astype(np.float32) * (self.spread / math.sqrt(dim))
        return _unit_rows(self.centres[owner_ids] + noise)


def owner_name(index: int) -> str:
    return f"BENCH-{index:07d}"


def _unit_rows(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def enrol(
    registry: Any, population: Population, *, start: int, stop: int, per_owner: int, kind: str, chunk: int
) -> float:
    """Enrol specimens ``start .. stop-1`` (specimen ``i`` belongs to owner ``i // per_owner``); returns seconds."""
    from similarity.registry import NewSpecimen

    placeholder = np.full((8, 8, 3), 200, np.uint8)
    elapsed = 0.0
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        owners = np.arange(lo, hi, dtype=np.int64) // per_owner
        vectors = population.specimens(owners)
        batch = [
            NewSpecimen(owner=owner_name(int(o)), kind=kind, image=placeholder, embedding=v)
            for o, v in zip(owners, vectors, strict=True)
        ]
        t0 = time.perf_counter()
        registry.add_many(batch)
        elapsed += time.perf_counter() - t0
    return elapsed


def measure_queries(
    registry: Any, population: Population, *, size: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Time identify and verify for ``args.queries`` queries of owners enrolled so far."""
    owners_enrolled = math.ceil(size / args.per_owner)
    rng = np.random.default_rng([args.seed, 3, size])
    truth = rng.integers(0, owners_enrolled, args.queries)
    queries = population.queries(truth)

    identify_s, hits_at_1, hits_at_k = [], 0, 0
    for owner, q in zip(truth, queries, strict=True):
        t0 = time.perf_counter()
        found = registry.identify(q, args.kind, top_k=args.top_k)
        identify_s.append(time.perf_counter() - t0)
        names = [h.owner for h in found]
        hits_at_1 += bool(names) and names[0] == owner_name(int(owner))
        hits_at_k += owner_name(int(owner)) in names

    verify_s = []
    for owner, q in zip(truth, queries, strict=True):
        t0 = time.perf_counter()
        registry.verify(q, owner_name(int(owner)), args.kind)
        verify_s.append(time.perf_counter() - t0)

    def row(operation: str, seconds: Sequence[float], **extra: Any) -> dict[str, Any]:
        total = sum(seconds)
        return {
            "specimens": size,
            "owners": owners_enrolled,
            "operation": operation,
            **latency_summary(seconds),
            "per_s": round(len(seconds) / total, 1) if total > 0 else None,
            **extra,
        }

    return [
        row(
            "identify",
            identify_s,
            top_k=args.top_k,
            recall_at_1=round(hits_at_1 / args.queries, 4),
            recall_at_k=round(hits_at_k / args.queries, 4),
        ),
        row("verify", verify_s, specimens_per_owner=args.per_owner),
    ]


def _check_args(args: argparse.Namespace) -> None:
    problems = []
    if args.dim < 2:
        problems.append(f"--dim must be >= 2, got {args.dim}")
    if args.per_owner < 1 or args.queries < 1 or args.chunk < 1 or args.top_k < 1:
        problems.append("--per-owner, --queries, --chunk and --top-k must be >= 1")
    if args.spread < 0:
        problems.append(f"--spread must be >= 0, got {args.spread}")
    if problems:
        raise SystemExit("registry_search: " + "; ".join(problems))


def _open_empty(url: str, version: str) -> Any:
    from similarity.registry import SpecimenRegistry

    registry = SpecimenRegistry.from_url(url, model_version=version)
    existing = len(registry)
    if existing:
        registry.close()
        raise SystemExit(
            f"registry_search: the database at --database-url already holds {existing} specimens; "
            "the benchmark enrols synthetic ones and needs an empty database (create a throw-away one)"
        )
    return registry


def _delete_run_rows(url: str, version: str) -> None:
    from sqlalchemy import MetaData, Table, delete

    from similarity.registry import make_engine

    engine = make_engine(url)
    try:
        table = Table(SPECIMEN_TABLE, MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.model_version == version))
    finally:
        engine.dispose()


def run(args: argparse.Namespace, url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grow the registry at ``url`` through ``args.sizes`` and measure at each size."""
    from similarity.registry import SpecimenRegistry

    sizes = sorted(set(args.sizes))
    version = f"benchmark-{uuid.uuid4().hex[:12]}"
    population = Population(
        owners=math.ceil(sizes[-1] / args.per_owner), dim=args.dim, spread=args.spread, seed=args.seed
    )
    rows: list[dict[str, Any]] = []
    registry = _open_empty(url, version)
    enrolled = 0
    try:
        for size in sizes:
            seconds = enrol(
                registry,
                population,
                start=enrolled,
                stop=size,
                per_owner=args.per_owner,
                kind=args.kind,
                chunk=args.chunk,
            )
            added, enrolled = size - enrolled, size
            rows.append(
                {
                    "specimens": size,
                    "owners": math.ceil(size / args.per_owner),
                    "operation": "enrol",
                    "added": added,
                    "seconds": round(seconds, 3),
                    "per_s": round(added / seconds, 1) if seconds > 0 else None,
                }
            )
            # A fresh registry object on the same database: the index is rebuilt from the table.
            registry.close()
            t0 = time.perf_counter()
            registry = SpecimenRegistry.from_url(url, model_version=version)
            open_s = time.perf_counter() - t0
            if len(registry.owners(args.kind)) != math.ceil(size / args.per_owner):
                raise RuntimeError("the reopened registry does not hold the owners just enrolled")
            rows.append(
                {
                    "specimens": size,
                    "owners": math.ceil(size / args.per_owner),
                    "operation": "open",
                    "seconds": round(open_s, 3),
                }
            )
            rows.extend(measure_queries(registry, population, size=size, args=args))
            print(_progress(rows[-4:]), flush=True)
    finally:
        registry.close()
    return rows, {"model_version": version}


def _progress(rows: Sequence[dict[str, Any]]) -> str:
    by_op = {r["operation"]: r for r in rows}
    ident, ver = by_op["identify"], by_op["verify"]
    return (
        f"{ident['specimens']:>9,} specimens: enrol {by_op['enrol']['per_s']}/s, open {by_op['open']['seconds']} s, "
        f"identify p50 {ident['latency_ms_p50']} ms p99 {ident['latency_ms_p99']} ms "
        f"(recall@1 {ident['recall_at_1']}), verify p50 {ver['latency_ms_p50']} ms"
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and write ``<out-dir>/<name>.json``, ``.csv`` and (unless ``--no-plot``) ``.png``.

    Returns:
        The result document that was written.
    """
    _check_args(args)
    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="cv-registry-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'registry.db'}"
        database = "SQLite, temporary file" if args.database_url is None else url.split(":", 1)[0]
        rows, info = run(args, url)
        if args.database_url is not None and not args.keep:
            _delete_run_rows(url, info["model_version"])
    document = result_document(
        "registry_search",
        vars(args),
        machine,
        database=database,
        setup={
            "embedding_dim": args.dim,
            "kind": args.kind,
            "specimens_per_owner": args.per_owner,
            "spread": args.spread,
            "placeholder_image": "8x8 RGB PNG per specimen",
            "timing": "one call at a time, wall clock (time.perf_counter), registry methods incl. locking",
        },
        results=rows,
    )
    out: Path = args.out_dir
    write_json(out / f"{args.name}.json", document)
    write_csv(out / f"{args.name}.csv", rows)
    if not args.no_plot:
        plot(out / f"{args.name}.png", rows, title=f"Specimen registry ({database}), {machine['cpu']}")
    return document


def plot(path: Path, rows: Sequence[dict[str, Any]], *, title: str) -> Path:
    """Latency percentiles of identify and verify against registry size."""
    series: dict[str, tuple[list[float], list[float | None]]] = {}
    for op in ("identify", "verify"):
        picked = [r for r in rows if r["operation"] == op]
        for p in ("p50", "p99"):
            series[f"{op} {p}"] = ([r["specimens"] for r in picked], [r[f"latency_ms_{p}"] for r in picked])
    panel = Panel(
        title="Search latency (one query at a time)",
        xlabel="registered specimens",
        ylabel="ms per call",
        series=series,
        xscale="log10",
        dashed=[k for k in series if k.endswith("p99")],
    )
    return plot_panels(path, [panel], title=title)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
