"""Dashboard sessions in the database, so every API process knows every session (docs/api.md, "The dashboard").

The browser's cookie holds a random session id (256 bits). The row is keyed by its SHA-256 and
keeps the token the session acts with sealed (AES-GCM) under a key derived from the id, so a copy
of the database gives away neither a usable cookie nor a token. The CSRF token is derived from the
id too (an HMAC), so it is not stored at all and cannot be told from the row.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from .tx import run

__all__ = ["DashboardSessions", "Opened", "Ended", "SESSION_SECONDS"]

SESSION_SECONDS = 8 * 3600  # the longest a session lasts; a Keystone token's own expiry ends it sooner


@dataclass(frozen=True)
class Opened:
    """A live session: what the dashboard acts with."""

    token: str
    project: str
    user: str
    csrf: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Ended:
    """A session that existed and ran out (its row is gone now): the page says so."""

    reason: str


def _digest(purpose: bytes, sid: str) -> bytes:
    # Domain-separated: the row key, the sealing key and the CSRF token never coincide.
    return hmac.new(sid.encode(), purpose, hashlib.sha256).digest()


def row_id(sid: str) -> str:
    return _digest(b"sharedfs dashboard session id", sid).hex()


def csrf_of(sid: str) -> str:
    return base64.urlsafe_b64encode(_digest(b"sharedfs dashboard csrf", sid)).decode().rstrip("=")


def _seal(sid: str, token: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_digest(b"sharedfs dashboard token key", sid)).encrypt(nonce, token.encode(), row_id(sid).encode())
    return base64.b64encode(nonce + sealed).decode()


def _unseal(sid: str, sealed: str) -> Optional[str]:
    raw = base64.b64decode(sealed)
    try:
        plain = AESGCM(_digest(b"sharedfs dashboard token key", sid)).decrypt(raw[:12], raw[12:], row_id(sid).encode())
    except InvalidTag:
        return None
    return plain.decode()


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class DashboardSessions:
    """Open, find and close dashboard sessions; expired rows are removed as new ones open."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def open(self, token: str, project: str, user: str = "", expires_at: Optional[dt.datetime] = None) -> str:
        """A new session id (for the cookie only). It ends at expires_at (a Keystone token's expiry) or
        after SESSION_SECONDS, whichever is sooner."""
        sid = secrets.token_urlsafe(32)
        now = db.now()
        until = now + dt.timedelta(seconds=SESSION_SECONDS)
        if expires_at is not None:
            until = min(until, _aware(expires_at))

        def write(session: Session) -> None:
            session.execute(delete(db.DashboardSession).where(db.DashboardSession.expires_at < now))
            session.add(db.DashboardSession(id_sha256=row_id(sid), project=project, user=user,
                                            sealed_token=_seal(sid, token), created_at=now, expires_at=until))  # fmt: skip

        run(self.sessions, write)
        return sid

    def get(self, sid: Optional[str]) -> Union[Opened, Ended, None]:
        """The session, Ended if it ran out (and is removed now), None if there is none."""
        if not sid:
            return None
        with self.sessions() as session:
            row = session.get(db.DashboardSession, row_id(sid))
            if row is None:
                return None
            token = _unseal(sid, row.sealed_token)
            expires_at = _aware(row.expires_at)
        if token is None:
            return None
        if expires_at <= db.now():
            self.close(sid)
            return Ended("your session has expired: sign in again")
        return Opened(token, row.project, row.user, csrf_of(sid), expires_at)

    def close(self, sid: Optional[str]) -> None:
        if not sid:
            return
        gone = delete(db.DashboardSession).where(db.DashboardSession.id_sha256 == row_id(sid))
        run(self.sessions, lambda session: session.execute(gone))
