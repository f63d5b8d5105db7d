"""A test host in a network namespace: a veth pair with private addresses, for clients that are not local."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Tuple


def veth_into(name: str, subnet: str) -> Tuple[str, str]:
    """A veth pair from the host into network namespace `name`: the host side gets .1, the namespace's
    side .2 of the /30 `subnet`. Returns (host interface, namespace interface); deleting the host
    interface (or the namespace) removes both."""
    prefix = subnet.rsplit(".", 1)[0]
    host_if, ns_if = f"{name[:8]}h", f"{name[:8]}n"
    for argv in (["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
                 ["ip", "link", "set", ns_if, "netns", name],
                 ["ip", "addr", "add", f"{prefix}.1/30", "dev", host_if],
                 ["ip", "link", "set", host_if, "up"],
                 ["ip", "netns", "exec", name, "ip", "addr", "add", f"{prefix}.2/30", "dev", ns_if],
                 ["ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up"]):  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True)
    return host_if, ns_if


class NetNamespace:
    """`ip netns add` + veth; the host side gets .1, the namespace .2 of a /30 the test picks."""

    def __init__(self, name: str, subnet: str, base: Path, hosts: Dict[str, str]) -> None:
        self.name = name
        prefix = subnet.rsplit(".", 1)[0]
        self.host_address, self.address = f"{prefix}.1", f"{prefix}.2"
        self.hosts_file = base / f"{name}.hosts"
        self.hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"{ip} {n}\n" for n, ip in hosts.items()))
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.host_if, self.ns_if = veth_into(name, subnet)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)

    def run(self, script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A shell script inside the namespace; `ip netns exec` gives it a private mount
        namespace too, where /etc/hosts is replaced so names resolve to the test's addresses."""
        wrapped = f'mount --bind "{self.hosts_file}" /etc/hosts\n{script}'
        return subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", wrapped, "sh", *args],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        # Processes left in the namespace (a FUSE client) are ours: the namespace is.
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def mount_and_write(ns: NetNamespace, export: str, mount_point: str, path: str) -> Tuple[bool, str]:
    """Mount a GlusterFS export inside the namespace, write and read back `path`, unmount.
    Returns (worked, output). Judged by the I/O, not the mount's exit status: mount.glusterfs
    exits 0 before a refused client is torn down."""
    script = (
        'mkdir -p "$2"\n'
        'mount -t glusterfs "$1" "$2" || { echo "mount failed"; exit 1; }\n'
        "sleep 0.5\n"
        'mountpoint -q "$2" || { echo "not mounted any more: refused"; exit 1; }\n'
        'if echo "from $(hostname -I)" > "$2/$3" && cat "$2/$3"; then umount "$2"; exit 0; fi\n'
        'umount "$2" 2>/dev/null; exit 1\n'
    )
    result = ns.run(script, export, mount_point, path)
    return result.returncode == 0, result.stdout + result.stderr
