"""Where tests, the demo and benchmarks put scratch files and mount points: never below a system directory."""

from __future__ import annotations

from pathlib import Path

from sharedfs_agent.wire import SYSTEM_DIRS

REPO = Path(__file__).resolve().parents[1]


def workspace() -> Path:
    """REPO/.work, unless the clone itself lies below /tmp, /root, /var … where the agent refuses
    every mount point; then /srv/sharedfs-work. (A directory, not a mount: the host's mount
    table is only ever changed inside private namespaces.)"""
    top = "/" + REPO.parts[1] if len(REPO.parts) > 1 else "/"
    base = REPO / ".work" if top not in SYSTEM_DIRS else Path("/srv/sharedfs-work")
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # the postgres user must reach its data directory below it
    return base
