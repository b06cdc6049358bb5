"""Append-only, hash-chained audit log.

Every entry stores ``entry_hash = HMAC-SHA256(secret, prev_hash || canonical JSON of the entry)``;
the first entry chains to 64 zeros. Editing any stored field, deleting an entry or reordering
entries breaks the chain, which :func:`verify_chain` detects and reports with the first bad
sequence number. The secret (``<data_dir>/audit.key``, created on first use, mode 0600) means
somebody with write access to the database alone cannot re-compute a consistent chain after an
edit; truncating the newest entries is caught by the head file (``<data_dir>/audit.head``,
the last sequence number and hash) that every append updates.
Appends are serialised (one writer at a time within the process, and a unique ``seq`` primary key
across processes) so the chain never forks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import AuditEntry

GENESIS = "0" * 64
_lock = threading.Lock()


@dataclass(frozen=True)
class AuditKeys:
    """The chain's HMAC secret and the head file that guards against truncation."""

    secret: bytes
    head_path: Path | None = None

    @classmethod
    def in_dir(cls, data_dir: Path) -> AuditKeys:
        """Load (or create, 0600) ``audit.key`` in ``data_dir``; head file beside it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        key_path = data_dir / "audit.key"
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return cls(secret=bytes.fromhex(key_path.read_text().strip()), head_path=data_dir / "audit.head")

    def write_head(self, seq: int, entry_hash: str) -> None:
        if self.head_path is not None:
            tmp = self.head_path.with_suffix(".tmp")
            tmp.write_text(f"{seq} {entry_hash}\n")
            tmp.replace(self.head_path)

    def read_head(self) -> tuple[int, str] | None:
        if self.head_path is None or not self.head_path.exists():
            return None
        seq, digest = self.head_path.read_text().split()
        return int(seq), digest


def _entry_hash(keys: AuditKeys, prev_hash: str, seq: int, at: str, actor: str, action: str, payload: str) -> str:
    body = json.dumps([seq, at, actor, action, payload], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(keys.secret, (prev_hash + body).encode("utf-8"), hashlib.sha256).hexdigest()


def append(session: Session, keys: AuditKeys, *, actor: str, action: str, payload: dict[str, Any]) -> AuditEntry:
    """Add an entry to ``session`` (committed with the caller's transaction, so a failed request
    leaves neither its record nor its audit entry)."""
    last = session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.entry_hash
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        payload=body,
        prev_hash=prev,
        entry_hash=_entry_hash(keys, prev, seq, at, actor, action, body),
    )
    session.add(entry)
    return entry


def record(
    engine: Engine, keys: AuditKeys, *, actor: str, action: str, payload: dict[str, Any], retries: int = 5
) -> AuditEntry:
    """Append one entry in its own transaction (retrying if another process took the same seq)."""
    for _ in range(retries):
        with _lock, Session(engine, expire_on_commit=False) as s:
            entry = append(s, keys, actor=actor, action=action, payload=payload)
            try:
                s.commit()
                keys.write_head(entry.seq, entry.entry_hash)
                return entry
            except IntegrityError:
                s.rollback()
    raise RuntimeError("could not append to the audit log: too much contention")


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify_chain(engine: Engine, keys: AuditKeys) -> ChainReport:
    """Walk the whole log and check sequence continuity and every hash link."""
    prev = GENESIS
    expected_seq = 1
    n = 0
    with Session(engine) as s:
        for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
            n += 1
            if e.seq != expected_seq:
                return ChainReport(False, n, expected_seq, f"entry {expected_seq} is missing (next is {e.seq})")
            if e.prev_hash != prev:
                return ChainReport(False, n, e.seq, f"entry {e.seq} does not link to entry {e.seq - 1}")
            if _entry_hash(keys, prev, e.seq, e.at, e.actor, e.action, e.payload) != e.entry_hash:
                return ChainReport(False, n, e.seq, f"entry {e.seq} was modified after it was written")
            prev = e.entry_hash
            expected_seq += 1
    head = keys.read_head()
    if head is not None and (head[0] != n or head[1] != prev):
        return ChainReport(
            False, n, n + 1, f"the log ends at entry {n} but entry {head[0]} was written: entries deleted"
        )
    return ChainReport(True, n)
