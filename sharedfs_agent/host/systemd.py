"""What systemd offers the agent: is it PID 1, a scope of its own for a mount helper, sd_notify."""

from __future__ import annotations

import os
import socket
from typing import List, Optional, Sequence

__all__ = ["booted", "in_own_scope", "notify", "watchdog_interval"]


def booted() -> bool:
    """sd_booted(3): systemd is the init system of this machine (or container)."""
    return os.path.isdir("/run/systemd/system")


def in_own_scope(argv: Sequence[str], description: str) -> List[str]:
    """Run argv in a transient scope unit, outside the agent's cgroup.

    A FUSE client (glusterfs, ceph-fuse) forked by the mount helper would otherwise stay in
    sharedfs-agent.service's cgroup and be killed when systemd stops or restarts the agent,
    breaking the mount (k8s mount-utils doMount does the same for kubelet).
    """
    import shutil  # only when a FUSE helper is about to run

    systemd_run = shutil.which("systemd-run") or "systemd-run"
    return [systemd_run, "--scope", "--quiet", "--collect", f"--description={description}", "--", *argv]


def notify(message: str) -> bool:
    """sd_notify(3): "READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1". False when not under systemd.

    systemd-python is used when installed; otherwise the NOTIFY_SOCKET datagram protocol, which
    is all sd_notify does.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    try:
        from systemd import daemon  # type: ignore[import-not-found]

        return bool(daemon.notify(message))
    except ImportError:
        pass
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> Optional[float]:
    """Seconds between WATCHDOG=1 pings systemd expects (half its WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2
