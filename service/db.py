"""The service's own tables (API keys, audit log, inspection reports, uploaded images) and engine creation.

SQLite under ``CV_DATA_DIR`` is the embedded default; any SQLAlchemy URL (PostgreSQL in
production) works through ``CV_DATABASE_URL``. Tables are created on start-up if missing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, ForeignKey, Integer, LargeBinary, String, Text, create_engine, event, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key. Only the sha256 of the secret is stored; the secret is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One append-only audit record; ``entry_hash`` chains it to the previous entry."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class StoredImage(Base):
    """An uploaded file exactly as received, keyed by its sha256 (one row however often it is sent).

    Keeping the original bytes (rather than a re-encoded copy) costs nothing per request beyond the
    write, and the stored file can be checked against the digest in the report and its audit entry.
    """

    __tablename__ = "uploaded_images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class StoredReport(Base):
    """An inspection report as returned to the client; the inspected file is its ``image_sha256``."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    modality: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    image_sha256: Mapped[str] = mapped_column(String(64), ForeignKey(StoredImage.sha256))
    report_json: Mapped[str] = mapped_column(Text)


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite, WAL with ``synchronous=NORMAL`` and a busy timeout, so CLI and
    service can share the file.

    Durability trade-off of ``synchronous=NORMAL`` (in WAL mode): a commit no longer waits for an
    fsync of the WAL (one fsync per request under the audit lock, which serialises every write, was
    the largest database cost of an inspection); the WAL is synced at checkpoints instead. The
    database stays consistent in every case, and a crash of the *service process* loses nothing.
    A power cut or operating-system crash can lose the transactions committed since the last
    checkpoint, although their clients were answered: each such report disappears together with
    its audit entry (they share one transaction), never one without the other, and if
    ``audit.head`` (rewritten after every commit) survived, ``customs-vision audit verify`` reports
    the lost tail as deleted entries: a loud alarm, not a silent gap. A deployment that must not
    lose an acknowledged inspection runs on PostgreSQL (``CV_DATABASE_URL``).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_db(engine: Engine) -> None:
    """Create missing tables.

    Raises:
        RuntimeError: the database was created by a version that kept a re-encoded PNG in
            ``reports.image_png``; there are no automatic migrations, and inserting into it would
            fail on every inspection, so refuse to start with the reason instead.
    """
    if "reports" in inspect(engine).get_table_names():
        columns = {c["name"] for c in inspect(engine).get_columns("reports")}
        if "image_png" in columns:
            raise RuntimeError(
                f"the database at {engine.url!r} was created by an older customs-vision (reports.image_png); "
                "export what you need and start with a new CV_DATA_DIR or CV_DATABASE_URL"
            )
    Base.metadata.create_all(engine)
