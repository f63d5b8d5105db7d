"""Where each filesystem's state goes after a pass: the status file in state_dir (read by `status`)."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

from . import atomicfile
from .model import Verdict

__all__ = ["write_status", "read_status"]


def write_status(path: str, verdicts: Sequence[Verdict], source: str, note: str = "") -> None:
    atomicfile.write_json(
        path,
        {
            "updated_at": time.time(),
            "source": source,
            "note": note,
            "filesystems": [
                {"name": v.name, "mount_point": v.mount_point, "state": v.state.value, "detail": v.detail}
                for v in verdicts
            ],
        },
    )


def read_status(path: str) -> Optional[Dict[str, Any]]:
    try:
        return atomicfile.read_json(path)
    except (OSError, ValueError):
        return None
