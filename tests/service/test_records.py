"""What an inspection stores: the upload exactly as received (once per digest), its report and its
audit entry, in one transaction that leaves nothing behind when it fails."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service import audit
from service.audit import verify_chain
from service.db import AuditEntry, StoredImage, init_db, make_engine
from tests.service.conftest import Service
from tests.service.fixtures import jpeg, xray_scan
from vision.imageio import decode_image


def _inspect(service: Service, data: bytes) -> Any:
    return service.client.post(
        "/v1/xray/inspect", files={"image": ("scan.jpg", data, "image/jpeg")}, headers=service.auth("scanner")
    )


def _stored(service: Service, sha256: str) -> bytes | None:
    with Session(service.engine) as s:
        return s.scalar(select(StoredImage.data).where(StoredImage.sha256 == sha256))


def test_the_upload_is_stored_as_received_once_per_digest(service: Service) -> None:
    data = jpeg(xray_scan(dark=True, seed=71))
    before = service.counts()
    first, second = (_inspect(service, data) for _ in range(2))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    a, b = first.json(), second.json()
    assert a["id"] != b["id"]
    assert a["image"]["sha256"] == b["image"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert a["image"]["format"] == "JPEG"
    after = service.counts()
    assert after["reports"] == before["reports"] + 2 and after["audit"] == before["audit"] + 2
    assert after["images"] == before["images"] + 1  # the same file is kept once
    assert _stored(service, a["image"]["sha256"]) == data  # byte for byte, not re-encoded

    # The PNG a clerk sees is the stored original decoded again (lossy JPEG pixels, unchanged).
    for body in (a, b):
        r = service.client.get(f"/v1/reports/{body['id']}/image.png", headers=service.auth("clerk"))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert np.array_equal(decode_image(r.content), decode_image(data))


def test_a_failed_write_leaves_no_report_no_upload_and_no_audit_entry(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jpeg(xray_scan(dark=True, seed=72))
    before = service.counts()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    # The report and upload rows are already in the session when the audit entry fails.
    monkeypatch.setattr(audit, "append", broken)
    with pytest.raises(OSError, match="disk full"):  # answered 500; the test client re-raises it
        _inspect(service, data)
    assert service.counts() == before
    assert _stored(service, hashlib.sha256(data).hexdigest()) is None

    monkeypatch.undo()
    assert _inspect(service, data).status_code == 200
    assert verify_chain(service.engine, service.audit_keys).ok


def test_a_transaction_retried_after_a_conflict_stores_everything_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jpeg(xray_scan(dark=False, seed=73))
    before = service.counts()
    real_append = audit.append
    calls = 0

    def conflicting(session: Session, keys: audit.AuditKeys, **kwargs: Any) -> AuditEntry:
        """The first attempt collides on the sequence number, as when another process appended."""
        nonlocal calls
        calls += 1
        entry = real_append(session, keys, **kwargs)
        if calls == 1:
            session.add(AuditEntry(seq=entry.seq, at="", actor="", action="", payload="", prev_hash="", entry_hash=""))
        return entry

    monkeypatch.setattr(audit, "append", conflicting)
    r = _inspect(service, data)
    assert r.status_code == 200, r.text
    assert calls == 2
    after = service.counts()
    assert {k: after[k] - before[k] for k in after} == {"reports": 1, "images": 1, "audit": 1, "specimens": 0}
    assert _stored(service, r.json()["image"]["sha256"]) == data
    assert verify_chain(service.engine, service.audit_keys).ok


def test_sqlite_runs_in_wal_mode_with_normal_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_a_database_that_stored_re_encoded_pngs_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE reports (id VARCHAR(36) PRIMARY KEY, modality VARCHAR(16), created_at DATETIME, "
            "actor VARCHAR(128), image_sha256 VARCHAR(64), report_json TEXT, image_png BLOB NOT NULL)"
        )
    with pytest.raises(RuntimeError, match=r"older customs-vision \(reports\.image_png\)"):
        init_db(make_engine(f"sqlite:///{path}"))
