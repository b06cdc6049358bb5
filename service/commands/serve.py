"""``customs-vision serve``: run the HTTP service."""

from __future__ import annotations

import argparse

from service.cli import CommandGroups


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
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0
