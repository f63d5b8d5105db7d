"""Tokens: made by `sharedfs-api token create`, stored as SHA-256, resolved to a Principal per request."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from sqlalchemy.orm import sessionmaker

from . import db
from .errors import Forbidden, Unauthorized

__all__ = ["Principal", "new_token", "hash_token", "store_token", "TokenCache", "ROLES"]

ROLES = ("admin", "project", "instance")


@dataclass(frozen=True)
class Principal:
    role: str  # admin | project | instance
    project: Optional[str] = None
    instance_id: Optional[str] = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def require_tenant(self, tenant: str) -> None:
        """Admin anywhere; a project or instance token only inside its own tenant."""
        if not self.admin and self.project != tenant:
            raise Forbidden(f"this token belongs to project {self.project!r}, not {tenant!r}")

    def require_manager(self, tenant: str) -> None:
        """Admin, or a project token of this tenant: the roles that manage filesystems."""
        self.require_tenant(tenant)
        if self.role == "instance":
            raise Forbidden("an instance token may only read its own filesystems and report their state")

    def require_instance(self, tenant: str, instance_id: str) -> None:
        """Admin, the tenant's project token, or that very instance's token."""
        self.require_tenant(tenant)
        if self.role == "instance" and self.instance_id != instance_id:
            raise Forbidden(f"this token belongs to instance {self.instance_id!r}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain hash cannot be brute-forced; no salt or KDF needed.
    return hashlib.sha256(token.encode()).hexdigest()


def store_token(sessions: sessionmaker, role: str, project: Optional[str], instance_id: Optional[str]) -> str:
    """Make a token, keep only its hash, return it (shown once)."""
    token = new_token()
    with sessions() as session:
        session.add(db.Token(sha256=hash_token(token), role=role, project=project, instance_id=instance_id))
        session.commit()
    return token


class TokenCache:
    """Resolves X-Auth-Token values; remembers answers briefly so a long-poll storm does not
    turn into a storm of database reads."""

    def __init__(self, sessions: sessionmaker, ttl: float = 30.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._seen: Dict[str, Tuple[float, Optional[Principal]]] = {}

    def resolve(self, token: Optional[str]) -> Principal:
        if not token:
            raise Unauthorized("missing X-Auth-Token header")
        digest = hash_token(token)
        hit = self._seen.get(digest)
        if hit is None or hit[0] < time.monotonic():
            with self.sessions() as session:
                row = session.get(db.Token, digest)
            principal = Principal(row.role, row.project, row.instance_id) if row else None
            if len(self._seen) > 100_000:
                self._seen.clear()
            # An unknown token is remembered for a moment only: it may be created right after.
            hit = (time.monotonic() + (self.ttl if principal else 1.0), principal)
            self._seen[digest] = hit
        if hit[1] is None:
            raise Unauthorized("unknown X-Auth-Token")
        return hit[1]
