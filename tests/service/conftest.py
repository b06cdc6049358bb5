"""Fixtures for the API tests: tiny models, a running app per test module, one key per role."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.app import create_app
from service.audit import AuditKeys
from service.db import AuditEntry, StoredImage, StoredReport
from service.security import create_api_key
from service.settings import Settings
from tests.service.fixtures import write_all_models


@dataclass
class Service:
    """A running app with its client, settings and one API key per role."""

    client: TestClient
    settings: Settings
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @property
    def engine(self) -> Any:
        return self.client.app.state.engine  # type: ignore[attr-defined]

    @property
    def audit_keys(self) -> AuditKeys:
        return AuditKeys.in_dir(self.settings.data_dir)

    def counts(self) -> dict[str, int]:
        """Rows written so far: reports, stored uploads, audit entries and specimens."""
        from similarity.registry import SpecimenRegistry

        with Session(self.engine) as s:
            reports = s.scalar(select(func.count()).select_from(StoredReport)) or 0
            images = s.scalar(select(func.count()).select_from(StoredImage)) or 0
            audit = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
        pipeline = self.client.app.state.pipeline  # type: ignore[attr-defined]
        registry: SpecimenRegistry | None = pipeline.runtime.registry
        return {"reports": reports, "images": images, "audit": audit, "specimens": len(registry) if registry else 0}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_all_models(tmp_path_factory.mktemp("models"))


def wait_until_loaded(client: TestClient, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.app.state.pipeline is None:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError("models did not load")
        time.sleep(0.01)


@contextmanager
def running_service(data_dir: Path, models_dir: Path, **overrides: Any) -> Iterator[Service]:
    """Start the app on ``data_dir`` with the tiny models; keys for every role are created."""
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "models_dir": models_dir,
        "threads": 1,
        "max_wait_ms": 2.0,
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_pixels": 4_000_000,
        # The tiny X-ray model puts its box at a fixed place in the network input, so each close-up
        # tile would add a box elsewhere in the scan; test_api_availability turns the tiles on.
        "xray_tiles": False,
    }
    options.update(overrides)
    settings = Settings(**options)
    with TestClient(create_app(settings)) as client:
        wait_until_loaded(client)
        engine = client.app.state.engine  # type: ignore[attr-defined]
        keys = {
            role: create_api_key(engine, role=role, name=f"{role}-key")[0] for role in ("scanner", "clerk", "admin")
        }
        yield Service(client=client, settings=settings, keys=keys)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Service]:
    """One app for a whole test module (tests compare counts before and after, never absolutes)."""
    with running_service(tmp_path_factory.mktemp("var"), models_dir) as svc:
        yield svc


@pytest.fixture
def start_service(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Any]]:
    """Start a private app with settings overrides: ``with start_service(max_queue=1) as svc: ...``."""

    def start(models: Path | None = None, **overrides: Any) -> Any:
        return running_service(tmp_path / "var", models or models_dir, **overrides)

    yield start


@dataclass
class AsyncService:
    """An app driven through ``httpx.AsyncClient`` so that tests can send concurrent requests."""

    app: Any
    client: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@asynccontextmanager
async def async_service(data_dir: Path, models_dir: Path, **overrides: Any) -> AsyncIterator[AsyncService]:
    """Like :func:`running_service`, inside a running event loop (``asyncio.run`` in the test)."""
    options: dict[str, Any] = {"data_dir": data_dir, "models_dir": models_dir, "threads": 1, "xray_tiles": False}
    options.update(overrides)
    app = create_app(Settings(**options))
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 20
        while app.state.pipeline is None:
            if time.monotonic() > deadline:
                raise TimeoutError("models did not load")
            await asyncio.sleep(0.01)
        keys = {r: create_api_key(app.state.engine, role=r, name=f"{r}-key")[0] for r in ("scanner", "clerk", "admin")}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield AsyncService(app=app, client=client, keys=keys)
