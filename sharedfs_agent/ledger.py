"""The mount points the agent owns (state_dir/owned.json): what it mounted there, and whether it made the directory."""

from __future__ import annotations

import functools
import json
from typing import Dict, Mapping, Tuple

from . import atomicfile
from .errors import StateError
from .model import Access, Filesystem, OwnedMount

__all__ = ["load", "save"]


def _to_json(owned: OwnedMount) -> dict:
    fs = owned.filesystem
    return {
        "name": fs.name,
        "fs_type": fs.fs_type,
        "export": fs.export,
        "options": list(fs.options),
        "access": fs.access.value,
        "created_dir": owned.created_dir,
    }


def _from_json(mount_point: str, raw: dict) -> OwnedMount:
    fs = Filesystem(
        name=str(raw["name"]),
        fs_type=str(raw["fs_type"]),
        export=str(raw["export"]),
        mount_point=mount_point,
        options=tuple(str(o) for o in raw.get("options", ())),
        access=Access(raw.get("access", "rw")),
    )
    return OwnedMount(fs, bool(raw.get("created_dir", False)))


def load(path: str) -> Dict[str, OwnedMount]:
    """Raises StateError when the file is damaged: losing track of what we own is not silent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    try:
        return dict(_decode(data))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StateError(f"ledger {path} is damaged ({e}); move it aside to start afresh") from None


@functools.lru_cache(maxsize=2)
def _decode(data: bytes) -> Tuple[Tuple[str, OwnedMount], ...]:
    """Memoised on the bytes; the entries are immutable, callers get a fresh dict."""
    return tuple((mp, _from_json(mp, entry)) for mp, entry in json.loads(data).items())


def save(path: str, owned: Mapping[str, OwnedMount]) -> None:
    atomicfile.write_json(path, {mp: _to_json(o) for mp, o in sorted(owned.items())}, mode=0o600)
