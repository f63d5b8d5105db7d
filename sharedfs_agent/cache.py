"""Last-known-good desired state on disk, so a restart without the source still knows its mounts."""

from __future__ import annotations

import time
from typing import Any, Optional

from . import atomicfile

__all__ = ["save", "load"]


def save(path: str, document: Any) -> None:
    """Keep a document that passed validation; written atomically (0600: it names servers)."""
    atomicfile.write_json(path, {"saved_at": time.time(), "document": document}, mode=0o600)


def load(path: str) -> Optional[Any]:
    """The last saved document, or None when there is none or it is unreadable."""
    try:
        saved = atomicfile.read_json(path)
    except (OSError, ValueError):
        return None  # a damaged cache is no cache; the source fills it again
    return saved.get("document") if isinstance(saved, dict) else None
