"""What systemd offers the agent: is it PID 1, and a scope of its own for a mount helper."""

from __future__ import annotations

import os
import shutil
from typing import List, Sequence

__all__ = ["booted", "in_own_scope"]


def booted() -> bool:
    """sd_booted(3): systemd is the init system of this machine (or container)."""
    return os.path.isdir("/run/systemd/system")


def in_own_scope(argv: Sequence[str], description: str) -> List[str]:
    """Run argv in a transient scope unit, outside the agent's cgroup.

    A FUSE client (glusterfs, ceph-fuse) forked by the mount helper would otherwise stay in
    sharedfs-agent.service's cgroup and be killed when systemd stops or restarts the agent,
    breaking the mount (k8s mount-utils doMount does the same for kubelet).
    """
    systemd_run = shutil.which("systemd-run") or "systemd-run"
    return [systemd_run, "--scope", "--quiet", "--collect", f"--description={description}", "--", *argv]
