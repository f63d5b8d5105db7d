"""Where each filesystem's state goes after a pass: the status file, the API (on change), a metrics textfile."""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional, Sequence, Tuple

from . import atomicfile
from .errors import SourceUnavailable
from .model import Verdict
from .sources.api import ApiClient

__all__ = ["write_status", "read_status", "ApiReporter", "write_metrics"]

log = logging.getLogger(__name__)


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


class ApiReporter:
    """Sends each filesystem's state to the API when it changed, not on every pass; registers
    this instance's addresses when they change. A failed send is retried on the next pass."""

    def __init__(self, client: ApiClient, project: str, instance_id: str) -> None:
        self.client = client
        self.base = f"/v1.1/{project}/os-instances/{instance_id}"
        self.sent: Dict[str, Tuple[str, str]] = {}
        self.registered: Optional[Sequence[str]] = None

    def register(self, addresses: Sequence[str]) -> None:
        if self.registered == list(addresses):
            return
        try:
            response = self.client.request("PUT", self.base, json_body={"instance": {"addresses": list(addresses)}})
        except SourceUnavailable as e:
            log.warning("could not register addresses %s: %s", ", ".join(addresses) or "(none)", e)
            return
        if response.status_code in (200, 201):
            log.info("registered addresses %s", ", ".join(addresses) or "(none)")
            self.registered = list(addresses)
        else:
            log.warning("registering addresses: HTTP %s", response.status_code)

    def report(self, verdicts: Sequence[Verdict]) -> int:
        """Returns how many states were sent."""
        sent = 0
        for verdict in verdicts:
            if verdict.name.startswith("#") or verdict.name == "-":
                continue  # refused entries without a usable name cannot be addressed
            state = (verdict.state.value, verdict.detail[:1000])
            if self.sent.get(verdict.name) == state:
                continue
            try:
                response = self.client.request("PUT", f"{self.base}/filesystems/{verdict.name}/state",
                                               json_body={"state": state[0], "detail": state[1]})  # fmt: skip
            except SourceUnavailable as e:
                log.warning("could not report %s %s: %s", verdict.name, state[0], e)
                return sent
            if response.status_code == 200:
                self.sent[verdict.name] = state
                sent += 1
            elif response.status_code == 404:
                self.sent[verdict.name] = state  # deleted meanwhile: nobody to tell
            else:
                log.warning("reporting %s %s: HTTP %s", verdict.name, state[0], response.status_code)
        return sent


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
