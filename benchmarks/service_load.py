"""A bounded load generator for the inspection service: requests/s, latency and errors per concurrency level.

It posts X-ray scans (JPEG) to ``POST /v1/xray/inspect`` from ``C`` concurrent asyncio workers
(httpx), for each ``C`` in ``--concurrency`` (default 1 to 64). Every level is bounded twice: at most
``--requests`` requests and at most ``--duration`` seconds (requests in flight when time runs out
finish and are counted). Only loopback services are accepted (``127.0.0.0/8``, ``::1``,
``localhost``): this is a capacity measurement of a machine you control, not a tool to point at
someone else's server.

Targets:

* ``--url http://127.0.0.1:8000 --api-key KEY``: a service already running (``--label`` names it
  in the results).
* ``--spawn``: for each ``--batching`` value (default ``on,off``) a fresh service is started as a
  ``uvicorn`` subprocess on a free loopback port with its own data folder, ``CV_REQUIRED_MODELS=xray``,
  ``CV_BATCHING`` and the other ``CV_*`` settings given here; a ``scanner`` API key is created in
  its database with :func:`service.security.create_api_key`; the service is stopped afterwards.

Each request is a full inspection as a scanner workstation makes it: upload, decode, detection,
risk, and the report and audit entry written to the database. Before and after each level the
service's ``/metrics`` is read, so the mean number of requests per model call (what micro-batching
achieved) is recorded beside the client-side figures. The load generator shares the machine's CPU
with the service; on a small machine that costs the service some throughput, equally for both
batching modes.

Writes ``service_load.json`` (machine, services and their settings, one row per level),
``service_load.csv`` and ``service_load.png`` (requests/s and p95 latency against concurrency,
batching on vs off).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import (
    REPO_ROOT,
    RESULTS_DIR,
    Panel,
    csv_ints,
    csv_words,
    latency_summary,
    machine_description,
    plot_panels,
    result_document,
    write_csv,
    write_json,
)

ROUTE = "/v1/xray/inspect"
#: Seed of the posted scans (distinct from training and calibration sets).
IMAGE_SEED = 7_400_002
#: Hard limits that keep a mistyped option from turning the generator into a flood.
MAX_CONCURRENCY = 256
MAX_REQUESTS = 100_000
MAX_DURATION_S = 3_600.0
API_KEY_ENV = "CV_BENCH_API_KEY"
_BATCH_SERIES = re.compile(r'^cv_batch_size_(sum|count)\{model="xray"\}\s+(\S+)$', re.MULTILINE)


class NotLoopbackError(ValueError):
    """The target URL is not a loopback HTTP(S) address."""


def check_loopback(url: str) -> None:
    """Accept only ``http(s)://`` URLs whose host is loopback.

    Raises:
        NotLoopbackError: another scheme, no host, or a host that is not ``localhost`` or a loopback IP
            (names other than ``localhost`` are refused rather than resolved).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise NotLoopbackError(f"{url!r}: only http:// or https:// URLs are accepted")
    host = parts.hostname
    if not host:
        raise NotLoopbackError(f"{url!r} has no host")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopbackError(
            f"{url!r}: the load generator only targets services on this machine (127.0.0.1, ::1, localhost)"
        )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Bounded, loopback-only load test of POST /v1/xray/inspect at several concurrency levels.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running service on loopback, e.g. http://127.0.0.1:8000")
    target.add_argument("--spawn", action="store_true", help="start the service here, once per --batching value")
    parser.add_argument("--api-key", default=None, help=f"scanner key for --url (default: ${API_KEY_ENV})")
    parser.add_argument("--label", default="as running", help="what to call the --url service in the results")
    spawn = parser.add_argument_group("spawned service (--spawn)")
    spawn.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models", help="holds xray.json + xray.onnx")
    spawn.add_argument("--batching", type=csv_words, default=["on", "off"], help="CV_BATCHING values to compare")
    spawn.add_argument("--max-batch", type=int, default=None, help="CV_MAX_BATCH (default: the service's)")
    spawn.add_argument("--max-wait-ms", type=float, default=None, help="CV_MAX_WAIT_MS (default: the service's)")
    spawn.add_argument("--threads", type=int, default=None, help="CV_THREADS, ONNX Runtime threads per model")
    spawn.add_argument(
        "--service-env", action="append", default=[], metavar="CV_NAME=VALUE", help="more settings (repeatable)"
    )
    spawn.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for /readyz")
    load = parser.add_argument_group("load")
    load.add_argument("--concurrency", type=csv_ints, default=[1, 2, 4, 8, 16, 32, 64], help="concurrent clients")
    load.add_argument("--requests", type=int, default=200, help="most requests per level")
    load.add_argument("--duration", type=float, default=30.0, help="most seconds per level")
    load.add_argument("--warmup", type=int, default=4, help="untimed requests before the first level")
    load.add_argument("--request-timeout", type=float, default=60.0, help="seconds before a request is abandoned")
    images = parser.add_argument_group("images")
    images.add_argument("--image-dir", type=Path, default=None, help="post these images instead of generated scans")
    images.add_argument("--images", type=int, default=16, help="distinct scans cycled through")
    images.add_argument("--image-size", type=int, default=640, help="side of generated scans, pixels")
    images.add_argument("--jpeg-quality", type=int, default=90)
    out = parser.add_argument_group("output")
    out.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    out.add_argument("--name", default="service_load", help="result file stem")
    out.add_argument("--no-plot", action="store_true")
    return parser


# ------------------------------------------------------------------------------------------ payloads


def load_payloads(args: argparse.Namespace) -> tuple[list[bytes], dict[str, Any]]:
    """JPEG files to post, and where they came from."""
    from vision.imageio import encode_jpeg

    if args.image_dir is not None:
        from deploy.samples import folder_images

        images = folder_images(args.image_dir, limit=args.images)
        source = f"folder {args.image_dir}"
    else:
        from detectors.synth.xray import generate_scan

        images = [generate_scan(IMAGE_SEED, i, size=args.image_size).image for i in range(args.images)]
        source = f"generated: detectors.synth.xray.generate_scan, seed {IMAGE_SEED}"
    payloads = [encode_jpeg(im, quality=args.jpeg_quality) for im in images]
    info = {
        "source": source,
        "count": len(payloads),
        "size_wxh": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})[:10],
        "jpeg_quality": args.jpeg_quality,
        "mean_jpeg_bytes": int(sum(map(len, payloads)) / len(payloads)),
    }
    return payloads, info


# ---------------------------------------------------------------------------------------- the service


@dataclass
class Target:
    """A service to load: base URL, scanner key, label, and the settings it was started with."""

    url: str
    api_key: str
    label: str
    settings: dict[str, str] = field(default_factory=dict)


def service_settings(args: argparse.Namespace, batching: str, data_dir: Path) -> dict[str, str]:
    """The ``CV_*`` environment of a spawned service."""
    env = {
        "CV_DATA_DIR": str(data_dir),
        "CV_MODELS_DIR": str(Path(args.models_dir).resolve()),
        "CV_REQUIRED_MODELS": "xray",
        "CV_BATCHING": "true" if batching == "on" else "false",
        # Queue room for every client of the highest level: refusals (503) should mean overload, not a
        # queue smaller than the offered concurrency.
        "CV_MAX_QUEUE": str(max(64, *args.concurrency)),
    }
    for name, value in (("CV_MAX_BATCH", args.max_batch), ("CV_MAX_WAIT_MS", args.max_wait_ms)):
        if value is not None:
            env[name] = str(value)
    if args.threads is not None:
        env["CV_THREADS"] = str(args.threads)
    for item in args.service_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("CV_"):
            raise SystemExit(f"service_load: --service-env takes CV_NAME=VALUE, got {item!r}")
        env[name] = value
    return env


#: Settings that shape serving throughput, recorded with their effective values.
_RECORDED_SETTINGS = ("backend", "threads", "batching", "max_batch", "max_wait_ms", "max_queue", "decode_workers")


def effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """The serving settings a spawned service runs with: the ones given here, else the defaults."""
    from service.settings import Settings

    # Every recorded field is passed explicitly, so this process's own CV_* variables cannot leak in
    # (the spawned service does not inherit them); pydantic parses the strings as the service would.
    values = {name: env.get(f"CV_{name.upper()}", Settings.model_fields[name].default) for name in _RECORDED_SETTINGS}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return {name: getattr(settings, name) for name in _RECORDED_SETTINGS}


def create_scanner_key(settings: dict[str, str]) -> str:
    """Create the service's tables and a ``scanner`` key in the database the settings point at."""
    from service.db import init_db, make_engine
    from service.security import create_api_key
    from service.settings import Settings

    url = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=Path(settings["CV_DATA_DIR"]), database_url=settings.get("CV_DATABASE_URL")
    ).sqlalchemy_url
    Path(settings["CV_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        init_db(engine)
        key, _ = create_api_key(engine, role="scanner", name=f"load-benchmark-{os.getpid()}-{time.time_ns()}")
    finally:
        engine.dispose()
    return key


@contextmanager
def spawned_service(args: argparse.Namespace, batching: str, workdir: Path) -> Iterator[Target]:
    """Start ``uvicorn service.app:create_app`` on a free loopback port; stop it on exit."""
    from deploy.triton_server import free_port

    settings = service_settings(args, batching, workdir / f"data-batching-{batching}")
    key = create_scanner_key(settings)
    port = free_port("127.0.0.1")
    # Inherited CV_* variables must not leak into the service under test; run in the work folder so
    # that no .env file of the checkout applies either.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CV_")} | settings
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    log_path = workdir / f"service-batching-{batching}.log"
    command = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path, args.startup_timeout)
        yield Target(url=url, api_key=key, label=batching, settings=settings)
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the service was not ready after {timeout_s:.0f} s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------------- the load


@dataclass
class LevelOutcome:
    """Client-side record of one concurrency level."""

    latencies_ok: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    capped_by_time: bool = False


async def run_level(
    target: Target, payloads: Sequence[bytes], *, concurrency: int, requests: int, duration_s: float, timeout_s: float
) -> LevelOutcome:
    """``concurrency`` workers post until ``requests`` were sent or ``duration_s`` passed."""
    import httpx

    outcome = LevelOutcome()
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {target.api_key}"}
    async with httpx.AsyncClient(base_url=target.url, timeout=timeout_s, limits=limits, headers=headers) as client:
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker() -> None:
            nonlocal issued
            while issued < requests:
                if time.perf_counter() >= deadline:
                    outcome.capped_by_time = True
                    return
                i = issued
                issued += 1
                files = {"image": (f"scan-{i % len(payloads)}.jpg", payloads[i % len(payloads)], "image/jpeg")}
                t0 = time.perf_counter()
                try:
                    response = await client.post(ROUTE, files=files)
                except httpx.HTTPError as e:
                    outcome.exceptions[type(e).__name__] += 1
                    continue
                elapsed = time.perf_counter() - t0
                outcome.statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    outcome.latencies_ok.append(elapsed)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        outcome.wall_s = time.perf_counter() - start
    return outcome


def warm_up(target: Target, payloads: Sequence[bytes], count: int, timeout_s: float) -> dict[str, int]:
    """Untimed sequential requests (first-call allocations); returns their status counts."""
    if count <= 0:
        return {}
    outcome = asyncio.run(
        run_level(target, payloads, concurrency=1, requests=count, duration_s=timeout_s * count, timeout_s=timeout_s)
    )
    return dict(outcome.statuses | outcome.exceptions)


def batch_counters(url: str) -> tuple[float, float] | None:
    """``(sum, count)`` of the service's ``cv_batch_size{model="xray"}`` histogram, or ``None``."""
    import httpx

    try:
        text = httpx.get(f"{url}/metrics", timeout=10.0).text
    except httpx.HTTPError:
        return None
    found = {kind: float(value) for kind, value in _BATCH_SERIES.findall(text)}
    return (found["sum"], found["count"]) if {"sum", "count"} <= found.keys() else None


def measure_target(target: Target, payloads: Sequence[bytes], args: argparse.Namespace) -> list[dict[str, Any]]:
    """All concurrency levels against one service."""
    rows = []
    for concurrency in args.concurrency:
        before = batch_counters(target.url)
        outcome = asyncio.run(
            run_level(
                target,
                payloads,
                concurrency=concurrency,
                requests=args.requests,
                duration_s=args.duration,
                timeout_s=args.request_timeout,
            )
        )
        after = batch_counters(target.url)
        calls = after[1] - before[1] if before and after else 0.0
        batch_mean = round((after[0] - before[0]) / calls, 3) if before and after and calls > 0 else None
        ok = outcome.statuses.get("200", 0)
        row = {
            "batching": target.label,
            "concurrency": concurrency,
            "requests": sum(outcome.statuses.values()) + sum(outcome.exceptions.values()),
            "ok": ok,
            "errors": {status: n for status, n in sorted(outcome.statuses.items()) if status != "200"},
            "exceptions": dict(sorted(outcome.exceptions.items())),
            "wall_s": round(outcome.wall_s, 3),
            "requests_per_s": round(ok / outcome.wall_s, 2) if outcome.wall_s > 0 else None,
            **{k: v for k, v in latency_summary(outcome.latencies_ok).items() if k != "samples"},
            "capped_by_time": outcome.capped_by_time,
            "model_calls": int(calls),
            "model_batch_mean": batch_mean,
        }
        rows.append(row)
        print(
            f"batching {target.label:>10} c={concurrency:>3}: {row['requests_per_s']} req/s, "
            f"p50 {row['latency_ms_p50']} ms, p95 {row['latency_ms_p95']} ms, ok {ok}/{row['requests']}, "
            f"errors {row['errors'] or '-'} {row['exceptions'] or ''}, mean batch {batch_mean}",
            flush=True,
        )
    return rows


def _check_args(args: argparse.Namespace) -> None:
    problems = []
    if max(args.concurrency) > MAX_CONCURRENCY:
        problems.append(f"--concurrency is limited to {MAX_CONCURRENCY}")
    if not 1 <= args.requests <= MAX_REQUESTS:
        problems.append(f"--requests must be within 1..{MAX_REQUESTS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        problems.append(f"--duration must be within (0, {MAX_DURATION_S:.0f}] seconds")
    if args.images < 1 or args.warmup < 0 or args.request_timeout <= 0:
        problems.append("--images must be >= 1, --warmup >= 0, --request-timeout > 0")
    if args.spawn:
        problems += [f"--batching takes 'on' and 'off', got {b!r}" for b in args.batching if b not in ("on", "off")]
    if problems:
        raise SystemExit("service_load: " + "; ".join(problems))
    if args.url is not None:
        try:
            check_loopback(args.url)
        except NotLoopbackError as e:
            raise SystemExit(f"service_load: {e}") from None
        if not (args.api_key or os.environ.get(API_KEY_ENV)):
            raise SystemExit(f"service_load: --url needs a scanner API key: --api-key or ${API_KEY_ENV}")


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Load each target and write ``<out-dir>/<name>.json``, ``.csv`` and (unless ``--no-plot``) ``.png``.

    Returns:
        The result document that was written.
    """
    _check_args(args)
    machine = machine_description()
    payloads, image_info = load_payloads(args)
    rows: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    if args.url is not None:
        target = Target(url=args.url.rstrip("/"), api_key=args.api_key or os.environ[API_KEY_ENV], label=args.label)
        services.append({"batching": target.label, "url": target.url, "warmup": {}})
        services[-1]["warmup"] = warm_up(target, payloads, args.warmup, args.request_timeout)
        rows += measure_target(target, payloads, args)
    else:
        with tempfile.TemporaryDirectory(prefix="cv-service-load-") as tmp:
            for batching in args.batching:
                with spawned_service(args, batching, Path(tmp)) as target:
                    shown = {k: v for k, v in target.settings.items() if k not in ("CV_DATA_DIR", "CV_MODELS_DIR")}
                    services.append(
                        {
                            "batching": batching,
                            "settings": shown,
                            "effective": effective_settings(target.settings),
                            "models_dir": args.models_dir,
                        }
                    )
                    services[-1]["warmup"] = warm_up(target, payloads, args.warmup, args.request_timeout)
                    rows += measure_target(target, payloads, args)
    document = result_document(
        "service_load",
        vars(args) | {"api_key": "(hidden)" if args.api_key else None},
        machine,
        route=ROUTE,
        services=services,
        images=image_info,
        client="httpx.AsyncClient, one asyncio worker per concurrent client, same machine as the service",
        results=rows,
    )
    write_json(args.out_dir / f"{args.name}.json", document)
    write_csv(args.out_dir / f"{args.name}.csv", rows)
    if not args.no_plot:
        plot(args.out_dir / f"{args.name}.png", rows, title=f"{ROUTE} on {machine['cpu']}")
    return document


def plot(path: Path, rows: Sequence[dict[str, Any]], *, title: str) -> Path:
    """Requests/s and p95 latency against concurrency, one line per batching mode."""
    rps: dict[str, tuple[list[float], list[float | None]]] = {}
    p95: dict[str, tuple[list[float], list[float | None]]] = {}
    for r in rows:
        label = f"batching {r['batching']}"
        for series, key in ((rps, "requests_per_s"), (p95, "latency_ms_p95")):
            xs, ys = series.setdefault(label, ([], []))
            xs.append(r["concurrency"])
            ys.append(r[key])
    return plot_panels(
        path,
        [
            Panel("Throughput (200 answers)", "concurrent clients", "requests / s", rps),
            Panel("Latency p95 (200 answers)", "concurrent clients", "ms", p95),
        ],
        title=title,
    )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
