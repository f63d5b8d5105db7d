"""When each instance's agent last long-polled: noted in memory on every poll, written in one batch a minute."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Dict, List

from sqlalchemy import bindparam, update
from sqlalchemy.orm import sessionmaker

from .. import db

__all__ = ["LastSeen", "FLUSH_INTERVAL"]

log = logging.getLogger(__name__)

# 20,000 agents long-polling for 60 s each start some 330 polls a second: one UPDATE each would
# be the database's main load. Kept in a dict instead and written once a minute per process as one
# executemany, so last_seen in the database is at most this old (plus the poll's own hold).
FLUSH_INTERVAL = 60.0


class LastSeen:
    """Per API process. saw() is a dict store under a lock; flush() writes what changed since the last one."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions
        self.lock = threading.Lock()
        self.pending: Dict[str, dt.datetime] = {}

    def saw(self, instance_id: str) -> None:
        moment = db.now()
        with self.lock:
            self.pending[instance_id] = moment

    def flush(self) -> int:
        """Write every pending time (never moving a later one back); returns how many were sent."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return 0
        table = db.Instance.__table__
        # Core executemany: an instance deregistered meanwhile simply matches no row.
        statement = (update(table).where(table.c.id == bindparam("instance"))
                     .where((table.c.last_seen.is_(None)) | (table.c.last_seen < bindparam("seen")))
                     .values(last_seen=bindparam("seen")))  # fmt: skip
        rows = [{"instance": instance, "seen": seen} for instance, seen in batch.items()]
        try:
            with self.sessions() as session:
                session.execute(statement, rows)
                session.commit()
        except Exception:
            with self.lock:  # kept for the next try, unless a later poll replaced it
                for instance, seen in batch.items():
                    self.pending.setdefault(instance, seen)
            raise
        return len(rows)

    def merge(self, entries: List[dict]) -> List[dict]:
        """Instance entries with this process's polls not yet written (so one process answers at once)."""
        with self.lock:
            pending = dict(self.pending)
        merged = []
        for entry in entries:
            seen = pending.get(entry["id"])
            written = dt.datetime.fromisoformat(entry["last_seen"]) if entry.get("last_seen") else None
            if seen is not None and (written is None or seen > written):  # another process may have written later
                entry = {**entry, "last_seen": seen.isoformat()}
            merged.append(entry)
        return merged
