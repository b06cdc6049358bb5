"""API keys and roles.

Roles are ordered: ``scanner`` may inspect; ``clerk`` may also compare and read specimens and
reports; ``admin`` may also register and delete specimens. A key is ``cv_<prefix>_<secret>``; only
its sha256 is stored (keys are 256-bit random, so a fast hash is enough: there is nothing to
brute-force), and the CLI prints the key exactly once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import ApiKey

Role = Literal["scanner", "clerk", "admin"]
ROLES: tuple[Role, ...] = ("scanner", "clerk", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


class ApiKeyError(ValueError):
    """A key could not be created (bad role, duplicate name)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded in the audit log) and role."""

    name: str
    role: Role

    def allows(self, needed: Role) -> bool:
        return _RANK[self.role] >= _RANK[needed]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(engine: Engine, *, role: str, name: str | None = None) -> tuple[str, ApiKey]:
    """Create a key; returns ``(plaintext_key, row)``. The plaintext is not stored anywhere."""
    if role not in ROLES:
        raise ApiKeyError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(4)
    key = f"cv_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name or f"{role}-{prefix}", role=role, key_hash=hash_key(key), prefix=prefix)
    with Session(engine, expire_on_commit=False) as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError:
            raise ApiKeyError(f"an API key named {row.name!r} already exists") from None
    return key, row


def authenticate(engine: Engine, key: str) -> Principal | None:
    """The principal for a presented key, or None if unknown or revoked."""
    with Session(engine) as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
        if row is None or row.revoked_at is not None:
            return None
        return Principal(name=row.name, role=row.role)  # type: ignore[arg-type]
