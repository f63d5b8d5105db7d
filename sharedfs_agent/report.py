"""Where each filesystem's state goes after a pass on this host: the status file and a metrics textfile."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

from . import atomicfile
from .model import Verdict

__all__ = ["write_status", "read_status", "write_metrics"]


def write_status(path: str, verdicts: Sequence[Verdict], source: str, note: str = "") -> None:
    atomicfile.write_json(path, {
        "updated_at": time.time(),
        "source": source,
        "note": note,
        "filesystems": [
            {"name": v.name, "mount_point": v.mount_point, "state": v.state.value, "detail": v.detail}
            for v in verdicts
        ],
    })  # fmt: skip


def read_status(path: str) -> Optional[Dict[str, Any]]:
    try:
        return atomicfile.read_json(path)
    except (OSError, ValueError):
        return None


def write_metrics(path: str, verdicts: Sequence[Verdict], source_up: bool, passes: int) -> None:
    """Prometheus node-exporter textfile (written atomically, as the collector requires)."""
    lines = [
        "# HELP sharedfs_filesystem_state 1 for the state each filesystem is in.",
        "# TYPE sharedfs_filesystem_state gauge",
    ]
    for v in verdicts:
        name = v.name.replace("\\", "").replace('"', "")
        mount_point = (v.mount_point or "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(
            f'sharedfs_filesystem_state{{name="{name}",mount_point="{mount_point}",state="{v.state.value}"}} 1'
        )
    lines += [
        "# HELP sharedfs_source_up Whether the last fetch of the desired state succeeded.",
        "# TYPE sharedfs_source_up gauge",
        f"sharedfs_source_up {int(source_up)}",
        "# HELP sharedfs_last_pass_timestamp_seconds When the last reconcile pass ended.",
        "# TYPE sharedfs_last_pass_timestamp_seconds gauge",
        f"sharedfs_last_pass_timestamp_seconds {time.time():.3f}",
        "# HELP sharedfs_passes_total Reconcile passes since the agent started.",
        "# TYPE sharedfs_passes_total counter",
        f"sharedfs_passes_total {passes}",
    ]
    atomicfile.replace_if_changed(path, ("\n".join(lines) + "\n").encode())
