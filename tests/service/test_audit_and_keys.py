"""The audit chain detects edits and deletions; API keys are stored hashed and checked by role."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from service.audit import AuditKeys, record, verify_chain
from service.cli import main
from service.db import ApiKey, AuditEntry, init_db, make_engine
from service.security import ApiKeyError, Principal, authenticate, create_api_key


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    init_db(e)
    return e


@pytest.fixture
def keys(tmp_path: Path) -> AuditKeys:
    return AuditKeys.in_dir(tmp_path / "var")


def _fill(engine: Engine, keys: AuditKeys, n: int = 5) -> None:
    for i in range(n):
        record(engine, keys, actor="clerk-1", action="inspect", payload={"i": i, "sha256": "ab" * 32})


def test_empty_and_intact_chain_verify(engine: Engine, keys: AuditKeys) -> None:
    assert verify_chain(engine, keys).ok
    _fill(engine, keys)
    report = verify_chain(engine, keys)
    assert report.ok and report.entries == 5
    assert (keys.head_path.parent / "audit.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        (lambda s: s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(payload='{"i":99}')), 3, "modified"),
        (lambda s: s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="admin")), 2, "modified"),
        (lambda s: s.execute(delete(AuditEntry).where(AuditEntry.seq == 4)), 4, "missing"),
        (lambda s: s.execute(delete(AuditEntry).where(AuditEntry.seq == 1)), 1, "missing"),
        (lambda s: s.execute(delete(AuditEntry).where(AuditEntry.seq == 5)), 5, "deleted"),
    ],
)
def test_tampering_is_detected(engine: Engine, keys: AuditKeys, tamper, bad_seq: int, problem: str) -> None:
    _fill(engine, keys)
    with Session(engine) as s:
        tamper(s)
        s.commit()
    report = verify_chain(engine, keys)
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert problem in report.problem


def test_a_chain_recomputed_without_the_secret_is_rejected(engine: Engine, keys: AuditKeys) -> None:
    _fill(engine, keys)
    forger = AuditKeys(secret=b"guessed", head_path=None)
    with Session(engine) as s:
        s.execute(delete(AuditEntry))
        s.commit()
    _fill(engine, forger)  # a consistent chain, but under the wrong secret
    report = verify_chain(engine, keys)
    assert not report.ok and report.first_bad_seq == 1


def test_keys_are_hashed_and_roles_ranked(engine: Engine) -> None:
    key, _ = create_api_key(engine, role="clerk", name="desk-7")
    with Session(engine) as s:
        stored = s.scalars(select(ApiKey)).one()
    assert key not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    who = authenticate(engine, key)
    assert who == Principal(name="desk-7", role="clerk")
    assert who.allows("scanner") and who.allows("clerk") and not who.allows("admin")
    assert authenticate(engine, key + "x") is None
    with pytest.raises(ApiKeyError, match="already exists"):
        create_api_key(engine, role="admin", name="desk-7")
    with pytest.raises(ApiKeyError, match="unknown role"):
        create_api_key(engine, role="root")


def test_cli_creates_a_key_the_service_settings_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CV_DATA_DIR", str(tmp_path / "var"))
    assert main(["apikey", "create", "--role", "admin", "--name", "ops"]) == 0
    key = capsys.readouterr().out.strip()
    from service.settings import Settings

    engine = make_engine(Settings().sqlalchemy_url)
    assert authenticate(engine, key) == Principal(name="ops", role="admin")
    assert main(["apikey", "create", "--role", "admin", "--name", "ops"]) == 2
    assert main(["audit", "verify"]) == 0
