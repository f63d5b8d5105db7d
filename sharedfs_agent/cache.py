"""Last-known-good desired state on disk, so a restart without the source still knows its mounts."""

from __future__ import annotations

from typing import Optional

from . import atomicfile

__all__ = ["save", "load"]


def save(path: str, document: bytes) -> None:
    """Keep a document that passed validation, as the source sent it (0600: it names servers).
    Written only when it changed; its mtime says when."""
    atomicfile.replace_if_changed(path, document, mode=0o600)


def load(path: str) -> Optional[bytes]:
    """The last saved document, or None when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
