"""``customs-vision serve``: run the HTTP service."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from service.cli import CommandGroups

if TYPE_CHECKING:
    from service.settings import Settings


def register(groups: CommandGroups) -> None:
    p = groups.root.add_parser(
        "serve",
        help="start the HTTP service (settings from CV_* environment variables)",
        description="Start the inspection service. Settings come from CV_* variables; "
        "--host/--port override CV_HOST/CV_PORT.",
    )
    p.add_argument("--host", default=None, help="bind address (default CV_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default CV_PORT or 8000)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    print(
        f"customs-vision: serving on http://{settings.host}:{settings.port} "
        f"(backend {settings.backend}, models {settings.models_dir}, data {settings.data_dir})"
    )
    # Flushed now: the service runs until stopped, and a piped stdout would hold these lines back.
    print(next_steps(settings, _program(sys.argv[0])), flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def next_steps(settings: Settings, program: str) -> str:
    """What a first-time user runs next, as copy-paste shell lines: a scanner key created in the
    service's own database, the README's example files, and a first X-ray scan posted with curl.

    Args:
        settings: The settings the service runs with (data directory, host, port).
        program: How to invoke this CLI from the current directory (``.venv/bin/customs-vision``).
    """
    lines = ["", "Next steps, from another shell in this directory:"]
    if settings.database_url:
        # Not printed: the URL may hold a password. A key must be created in the same database.
        lines.append("  # with the same CV_DATABASE_URL as this service")
    lines += [
        f"  export CV_DATA_DIR={shlex.quote(str(settings.data_dir))}",
        f"  SCANNER=$({program} apikey create --role scanner)",
        f"  {program} synth samples --out samples",
        f"  curl -sS -w '\\n' -H \"Authorization: Bearer $SCANNER\" -F image=@samples/scan.jpg "
        f"{_base_url(settings)}/v1/xray/inspect",
        'More (specimens, documents, compare, reports): README.md, "Using the service".',
        "",
    ]
    return "\n".join(lines)


def _program(argv0: str) -> str:
    """The CLI as the user invoked it (``.venv/bin/customs-vision`` under ``make run``), shortened
    to ``customs-vision`` when that name on PATH is the same script, else ``customs-vision``
    when we were not started through the script (``python -m service.cli``)."""
    if Path(argv0).name != "customs-vision":
        return "customs-vision"
    on_path = shutil.which("customs-vision")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "customs-vision"
    return shlex.quote(argv0)


def _base_url(settings: Settings) -> str:
    """Where a client on this machine reaches the service: a wildcard bind address is not one."""
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"
