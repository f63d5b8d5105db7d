"""`glusterfs`: real Gluster volumes on a configured brick host, with a quota and auth.allow per filesystem."""

from __future__ import annotations

import ipaddress
import os
import random
import shlex
import shutil
import socket
import subprocess
import time
from typing import AbstractSet, Iterable, List, Mapping, Optional, Set

from sharedfs_agent import wire

from ..errors import DriverError
from .base import Driver, FsSpec

__all__ = ["GlusterfsDriver", "auth_allow", "MAX_AUTH_ALLOW"]

# auth.allow with no address wanted: an address no client has, so nobody remote gets in.
# (An empty auth.allow means "*" to Gluster, so the empty set is never written as such.)
NOBODY = "0.0.0.0"
# What glusterd answers while another transaction holds the volume (or the cluster): retried.
BUSY = ("Another transaction is in progress", "Locking failed", "another transaction")
BUSY_RETRIES = 20

# The longest auth.allow value this driver writes (docs/api.md, "Drivers"). Measured with
# GlusterFS 10.3: values up to 3,636 characters were set; at 4,181 (IPv4) or 5,219 (IPv6) glusterd
# itself crashed (SIGSEGV, then a malloc assertion) and every volume's management with it. The
# value goes into a brick volfile line with its key, auth.addr.<brick path>.allow, which points
# at a 4 KiB line buffer; 3 KiB leaves room for that key.
MAX_AUTH_ALLOW = 3 * 1024


def auth_allow(addresses: Iterable[str]) -> str:
    """The auth.allow value for exactly these addresses, one by one, sorted. ValueError for any
    value that is not wire.check_address-clean, so no separator or wildcard reaches the option.

    Not CIDR blocks: glusterd 10.3 accepts `10.0.0.0/30` in auth.allow, but a client at 10.0.0.2
    is then refused (measured, tests/api/test_glusterfs_driver.py history), so a block would
    silently deny the addresses it stands for."""
    for address in addresses:
        if wire.check_address(address) != address:
            raise ValueError(f"address {address!r} is not in canonical form")
    return ",".join(sorted(addresses, key=lambda a: ipaddress.ip_address(a).packed.rjust(16, b"\0"))) or NOBODY


class GlusterfsDriver(Driver):
    """Options: brick_root (required; one directory per volume below it), brick_host (default:
    this host's name), export_host (what instances mount from; default brick_host), quota
    (default true), gluster_command (how to run the CLI, split like a shell would but never run
    by one; default "gluster", e.g. "ssh gluster1 gluster"), timeout (seconds per call, 120)."""

    name = "glusterfs"
    fs_type = "glusterfs"

    def do_setup(self, context: Mapping[str, str]) -> None:
        if not self.options.get("brick_root"):
            raise DriverError("glusterfs driver: set the option brick_root=DIR")
        self.brick_root = os.path.abspath(self.options["brick_root"])
        self.brick_host = self.options.get("brick_host") or socket.gethostname()
        self.export_host = self.options.get("export_host") or self.brick_host
        self.quota = self.options.get("quota", "true").lower() in ("1", "true", "yes", "on")
        self.cli = shlex.split(self.options.get("gluster_command", "gluster"))
        if not self.cli:
            raise DriverError("glusterfs driver: gluster_command is empty")
        self.timeout = float(self.options.get("timeout", "120"))
        os.makedirs(self.brick_root, exist_ok=True)
        self._gluster("volume", "list")  # reachable now, or the server does not start

    def _gluster(self, *args: str) -> str:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                result = subprocess.run([*self.cli, "--mode=script", *args], capture_output=True, text=True,
                                        timeout=self.timeout)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as e:
                raise DriverError(f"gluster {args[0]} {args[1] if len(args) > 1 else ''}: {e}") from None
            if result.returncode == 0:
                return result.stdout
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            # glusterd runs one transaction per volume at a time and refuses the others: wait.
            if not any(words in " ".join(message) for words in BUSY) or attempt == BUSY_RETRIES:
                break
            time.sleep(random.uniform(0.1, 0.3 * (attempt + 1)))
        raise DriverError(f"gluster {' '.join(args[:3])}: {message[-1] if message else result.returncode}")

    def _brick(self, name: str) -> str:
        return os.path.join(self.brick_root, name)

    def create(self, fs: FsSpec) -> str:
        brick = self._brick(fs.name)
        if os.path.exists(brick):
            raise DriverError(f"brick directory {brick} already exists; not reusing another volume's data")
        os.makedirs(brick)
        try:
            # "force": a brick on the root filesystem is what a small deployment has.
            self._gluster("volume", "create", fs.name, f"{self.brick_host}:{brick}", "force")
            self._gluster("volume", "set", fs.name, "auth.allow", NOBODY)
            self._gluster("volume", "start", fs.name)
            if self.quota:
                self._gluster("volume", "quota", fs.name, "enable")
                self._gluster("volume", "quota", fs.name, "limit-usage", "/", str(fs.size_bytes))
        except DriverError:
            self._destroy(fs.name)
            raise
        return f"{self.export_host}:/{fs.name}"

    def delete(self, fs: FsSpec) -> None:
        if fs.name in self._volumes():
            self._gluster("volume", "stop", fs.name, "force")
            self._gluster("volume", "delete", fs.name)
        shutil.rmtree(self._brick(fs.name), ignore_errors=True)

    def _destroy(self, name: str) -> None:
        """Undo a half-made volume, best effort, so no row or brick claims one that is not there."""
        for args in (("volume", "stop", name, "force"), ("volume", "delete", name)):
            try:
                self._gluster(*args)
            except DriverError:
                pass
        shutil.rmtree(self._brick(name), ignore_errors=True)

    def _volumes(self) -> List[str]:
        return self._gluster("volume", "list").split()

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        # The whole list in one `volume set`: what was allowed before and is not wanted now goes.
        try:
            value = auth_allow(addresses)
        except ValueError as e:
            raise DriverError(f"access list refused: {e}") from None
        if len(value) > MAX_AUTH_ALLOW:
            # This filesystem keeps its previous list; the others are not affected.
            raise DriverError(f"access list too long: {len(addresses)} addresses make an auth.allow of "
                              f"{len(value)} characters, more than the {MAX_AUTH_ALLOW} this driver writes")  # fmt: skip
        self._gluster("volume", "set", fs.name, "auth.allow", value)

    def inventory(self) -> Optional[Set[str]]:
        """The volumes whose bricks are all in brick_root: ours (brick_root is this driver's alone)."""
        ours: Set[str] = set()
        name, bricks = None, []
        for line in self._gluster("volume", "info", "all").splitlines() + ["Volume Name: "]:
            key, _, value = line.partition(":")
            if key.strip() == "Volume Name":
                if name and bricks and all(os.path.dirname(b) == self.brick_root for b in bricks):
                    ours.add(name)
                name, bricks = value.strip(), []
            elif key.strip().startswith("Brick") and key.strip()[5:].isdigit():
                bricks.append(value.strip().rpartition(":")[2])
        return ours
