"""``customs-vision apikey create`` and ``customs-vision audit verify``.

Both read the same settings as the service (``CV_DATA_DIR`` / ``CV_DATABASE_URL``), so a key
created here is accepted by a running service at once, without a restart.
"""

from __future__ import annotations

import argparse
import json
import sys

from service.cli import CommandGroups


def register(groups: CommandGroups) -> None:
    apikey = groups.root.add_parser("apikey", help="manage API keys", description="Manage API keys.")
    apikey_sub = apikey.add_subparsers(dest="apikey_what", metavar="WHAT", required=True)
    create = apikey_sub.add_parser(
        "create",
        help="create a key and print it once",
        description="Create an API key. The key is printed once; only its hash is stored.",
    )
    create.add_argument("--role", required=True, choices=["scanner", "clerk", "admin"])
    create.add_argument("--name", default=None, help="a unique name recorded in the audit log")
    create.set_defaults(func=_create_key)

    audit = groups.root.add_parser("audit", help="check the audit trail", description="Audit trail tools.")
    audit_sub = audit.add_subparsers(dest="audit_what", metavar="WHAT", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="verify the hash chain of the audit log",
        description="Verify every link of the audit log; exit 1 if any entry was edited or deleted.",
    )
    verify.set_defaults(func=_verify)


def _engine():  # type: ignore[no-untyped-def]
    from service.db import init_db, make_engine
    from service.settings import Settings

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    init_db(engine)
    return engine, settings


def _create_key(args: argparse.Namespace) -> int:
    from service.security import ApiKeyError, create_api_key

    try:
        key, row = create_api_key(_engine()[0], role=args.role, name=args.name)
    except ApiKeyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(key)
    print(f"created {row.role} key {row.name!r}; store it now, it is not shown again", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from service.audit import AuditKeys, verify_chain

    engine, settings = _engine()
    report = verify_chain(engine, AuditKeys.in_dir(settings.data_dir))
    print(
        json.dumps(
            {
                "ok": report.ok,
                "entries": report.entries,
                "first_bad_seq": report.first_bad_seq,
                "problem": report.problem,
            }
        )
    )
    return 0 if report.ok else 1
