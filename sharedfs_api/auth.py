"""Tokens: made by `sharedfs-api token create`, stored as SHA-256, resolved to a Principal per request."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from . import db
from .errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

__all__ = ["Principal", "new_token", "hash_token", "store_token", "list_tokens", "revoke_token", "TokenCache", "ROLES"]

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


def store_token(sessions: sessionmaker, role: str, project: Optional[str], instance_id: Optional[str],
                expires_in: Optional[float] = None) -> str:  # fmt: skip
    """Make a token, keep only its hash, return it (shown once)."""
    token = new_token()
    expires_at = db.now() + dt.timedelta(seconds=expires_in) if expires_in else None
    with sessions() as session:
        session.add(db.Token(sha256=hash_token(token), role=role, project=project, instance_id=instance_id,
                             expires_at=expires_at))  # fmt: skip
        session.commit()
    return token


TOKEN_ID_LENGTH = 12  # a token's id: the start of its hash, which says nothing about the secret


def list_tokens(sessions: sessionmaker) -> List[dict]:
    with sessions() as session:
        rows = session.scalars(select(db.Token).order_by(db.Token.created_at))
        return [{"id": t.sha256[:TOKEN_ID_LENGTH], "role": t.role, "project": t.project, "instance": t.instance_id,
                 "created_at": t.created_at, "expires_at": t.expires_at} for t in rows]  # fmt: skip


def revoke_token(sessions: sessionmaker, token_id: str) -> bool:
    """Delete the one token whose id (hash prefix) this is; False if none. ValueError if several match."""
    with sessions() as session:
        rows = list(session.scalars(select(db.Token).where(db.Token.sha256.startswith(token_id.lower()))))
        if len(rows) > 1:
            raise ValueError(f"{token_id!r} matches {len(rows)} tokens; give more of its id")
        for row in rows:
            session.delete(row)
        session.commit()
        return bool(rows)


class TokenCache:
    """Resolves X-Auth-Token values. An answer is remembered only while `generation()` is what it
    was when read (every change, a revocation too, bumps it, in every process on PostgreSQL), and
    `ttl` at most, so a long-poll storm is not a storm of database reads and a revoked token is
    refused at once. Without a generation (SQLite: no cross-process wake-up), nothing is remembered.

    A miss after a change (or a start) reads every token at once, not the one asked for: the
    fleet's polls come back together after each change and after an outage, and 20,000 agents
    would otherwise be 20,000 queries through the thread pool where one query of 20,000 rows
    serves them all. A token missing from that read (made since) is read on its own. Above
    `bulk_max` tokens, each is read on its own."""

    def __init__(self, sessions: sessionmaker, ttl: float = 30.0, generation: Optional[Callable[[], int]] = None,
                 bulk_max: int = 200_000) -> None:  # fmt: skip
        self.sessions = sessions
        self.ttl = ttl if generation is not None else 0.0
        self.generation = generation or (lambda: 0)
        self.bulk_max = bulk_max if generation is not None else 0
        self._seen: Dict[str, Tuple[float, int, Optional[Principal], Optional[dt.datetime]]] = {}
        self._bulk_lock = threading.Lock()  # one bulk read at a time; the other threads wait for it
        self._bulk: Tuple[float, int] = (0.0, -1)  # (good until, generation) of the last bulk read

    def resolve(self, token: Optional[str]) -> Principal:
        """The token's principal: Unauthorized if missing, unknown or expired. May read the database."""
        if not token:
            raise Unauthorized("missing X-Auth-Token header")
        digest = hash_token(token)
        hit = self._fresh(digest)
        if hit is None:
            hit = self._read(digest)
        return self._judge(hit)

    def cached(self, token: Optional[str]) -> Optional[Principal]:
        """resolve() when the answer is remembered (no database: safe on the event loop); None when
        it would have to read, so the caller goes to a thread. Errors are resolve()'s."""
        if not token:
            raise Unauthorized("missing X-Auth-Token header")
        hit = self._fresh(hash_token(token))
        return self._judge(hit) if hit is not None else None

    def _fresh(self, digest: str) -> Optional[tuple]:
        hit = self._seen.get(digest)
        if hit is None or hit[0] < time.monotonic() or hit[1] != self.generation():
            return None
        return hit

    def _read(self, digest: str) -> tuple:
        if self.bulk_max and self._bulk_stale():
            with self._bulk_lock:
                if self._bulk_stale():  # not read meanwhile by the thread we waited for
                    self._read_all()
            hit = self._fresh(digest)
            if hit is not None:
                return hit
        generation = self.generation()  # before the read: a change during it makes the answer stale
        # Core, not the ORM: this runs for every long-poll an agent opens.
        with self.sessions() as session:
            row = session.execute(select(db.Token.role, db.Token.project, db.Token.instance_id, db.Token.expires_at)
                                  .where(db.Token.sha256 == digest)).first()  # fmt: skip
        if len(self._seen) > self.bulk_max + 100_000:
            self._seen.clear()
        hit = _entry(row, time.monotonic() + self.ttl, generation)
        if self.ttl:
            self._seen[digest] = hit
        return hit

    def _bulk_stale(self) -> bool:
        until, generation = self._bulk
        return generation != self.generation() or until < time.monotonic()

    def _read_all(self) -> None:
        generation = self.generation()
        with self.sessions() as session:
            rows = session.execute(select(db.Token.sha256, db.Token.role, db.Token.project, db.Token.instance_id,
                                          db.Token.expires_at).limit(self.bulk_max + 1)).all()  # fmt: skip
        if len(rows) > self.bulk_max:
            log.warning("more than %d tokens: each is read on its own from now on", self.bulk_max)
            self.bulk_max = 0
            return
        until = time.monotonic() + self.ttl
        self._seen = {row.sha256: _entry(row, until, generation) for row in rows}
        self._bulk = (until, generation)

    @staticmethod
    def _judge(hit: tuple) -> Principal:
        if hit[2] is None:
            raise Unauthorized("unknown X-Auth-Token")
        if hit[3] is not None and _aware(hit[3]) <= db.now():
            raise Unauthorized("the X-Auth-Token has expired")
        return hit[2]


def _entry(row, until: float, generation: int) -> tuple:
    """What TokenCache remembers of a token row (None: no such token): (good until, generation, principal, expiry)."""
    if row is None:
        return (until, generation, None, None)
    return (until, generation, Principal(row.role, row.project, row.instance_id), row.expires_at)


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
