"""What the API answers, built from rows: the seed's fs_entry, instances, and the agent's desired-state document."""

from __future__ import annotations

import datetime as dt
import json
from typing import List, Optional

from sharedfs_agent import wire

from . import db

__all__ = [
    "fs_entry",
    "agent_entry",
    "identity_entry",
    "agent_document",
    "instance_entry",
    "fs_instance_entry",
    "AGENT_ENTRY_KEYS",
]

# The keys of an agent's entry the API fills from the filesystem's row, in the wire contract's
# words. `access` and `allow_nonempty` are left out: every agent applies its own defaults for them;
# `secret` is one instance's, added to that instance's document alone (identity_entry).
AGENT_ENTRY_KEYS = tuple(k for k in wire.ENTRY_KEYS if k not in ("access", "allow_nonempty", wire.SECRET_KEY))


def fs_entry(fs: db.Filesystem) -> dict:
    """The seed's fs_entry as the API answers it."""
    return {
        "name": fs.name,
        "size": fs.size,
        "scope": fs.scope,
        "project": fs.project,
        "fs_type": fs.fs_type,
        "mount_point": fs.mount_point,
        "mount_options": fs.mount_options,
        "export": fs.export,
        "status": fs.status,
        "status_detail": fs.status_detail,
    }


def agent_entry(fs: db.Filesystem) -> dict:
    """One entry of the agent's desired-state document (sharedfs_agent.wire; docs/agent.md)."""
    return {key: getattr(fs, key) for key in AGENT_ENTRY_KEYS}


def identity_entry(entry: dict, secret: str, options: List[str]) -> dict:
    """One instance's copy of an entry reached by identity: its credential and the options naming it."""
    return {**entry, "mount_options": [*entry["mount_options"], *options], wire.SECRET_KEY: secret}


def agent_document(entries: List[dict]) -> bytes:
    """The exact bytes an agent gets: sorted by name, canonical JSON, so equal sets have equal ETags."""
    entries = sorted(entries, key=lambda e: e["name"])
    return json.dumps({wire.DOCUMENT_KEY: entries}, sort_keys=True, separators=(",", ":")).encode()


def instance_entry(instance: db.Instance) -> dict:
    seen = instance.last_seen
    return {"id": instance.id, "project": instance.project, "addresses": instance.addresses,
            "last_seen": _utc(seen).isoformat() if seen else None}  # fmt: skip


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every one we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def fs_instance_entry(instance: db.Instance, connected: bool, state: Optional[db.MountState]) -> dict:
    """An instance as a filesystem's instance list shows it: whether it belongs, what its agent reported."""
    return {
        **instance_entry(instance),
        "connected": connected,
        "mount_state": state.state if state else "pending",
        "detail": state.detail if state else "",
        "updated_at": state.updated_at.isoformat() if state else None,
    }
