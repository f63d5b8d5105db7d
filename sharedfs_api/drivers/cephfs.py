"""`cephfs`: CephFS subvolumes (the mgr volumes module, as Manila's cephfs driver uses it), one cephx client per instance."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from typing import AbstractSet, Dict, Mapping, Optional, Set, Tuple

from sharedfs_agent import wire

from ..errors import DriverError
from .base import Driver, FsSpec, Identity

__all__ = ["CephfsDriver", "auth_id"]

# A cephx id the mgr volumes module and both clients' `name=`/`ceph.id=` take (the agent's
# mounters accept [A-Za-z0-9_.-]{1,64}); instance ids are wire.IDENT, filesystem names wire.FS_NAME.
AUTH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PREFIX = "sfs."
CLIENTS = {"kernel": "cephfs", "fuse": "ceph-fuse"}  # driver option `client` -> the fs_type agents mount
# A cephx key as `ceph auth get` prints it: base64 of a 28-byte secret.
KEY = re.compile(r"[A-Za-z0-9+/]{38}==")


def auth_id(fs_name: str, instance_id: str) -> str:
    """The cephx id of one instance for one subvolume: `sfs.<fs>.<instance>`, readable in `ceph
    auth ls`. The dot cannot occur in a filesystem name (wire.FS_NAME), so two pairs never share
    an id (with `-`, fs `a-b` + instance `c` and fs `a` + instance `b-c` would, and one instance
    would get the other's subvolume). Past 64 characters a digest of the pair stands in, after
    `_`, which starts no filesystem name or instance id."""
    plain = f"{PREFIX}{fs_name}.{instance_id}"
    if len(plain) <= 64:
        return plain
    digest = hashlib.sha256(f"{fs_name}/{instance_id}".encode()).hexdigest()
    head = f"{PREFIX}{fs_name}."
    if len(head) + 1 + 16 <= 64:
        return f"{head}_{digest[: 64 - len(head) - 1]}"
    return f"{PREFIX}_{digest[: 64 - len(PREFIX) - 1]}"


class CephfsDriver(Driver):
    """Options: fs_name (the CephFS volume; default: the cluster's only one), group (the
    subvolume group, made at start; default "sharedfs"), client ("kernel": fs_type cephfs and
    the export `mon1:port,mon2:port:/volumes/…`; "fuse": fs_type ceph-fuse and the export the
    path alone, the monitors coming from the instance's /etc/ceph/ceph.conf), conf and
    client_id / keyring (the admin's, passed as -c, --id, --keyring), ceph_command (how to run
    the CLI, split like a shell would but never run by one; default "ceph", e.g. "ip netns exec
    ceph1 ceph"), mons (what instances reach the monitors by, comma-separated; default: what the
    cluster says), timeout (seconds per call, 60)."""

    name = "cephfs"
    access_by = "identity"

    def __init__(self, options: Mapping[str, str]) -> None:
        super().__init__(options)
        client = self.options.get("client", "kernel")
        if client not in CLIENTS:
            raise ValueError(f"cephfs driver: client {client!r} must be one of {', '.join(CLIENTS)}")
        self.client = client
        self.fs_type = CLIENTS[client]  # known before do_setup: backends choose by it

    def do_setup(self, context: Mapping[str, str]) -> None:
        self.cli = shlex.split(self.options.get("ceph_command", "ceph"))
        if not self.cli:
            raise DriverError("cephfs driver: ceph_command is empty")
        for option, flag in (("conf", "-c"), ("client_id", "--id"), ("keyring", "--keyring")):
            if self.options.get(option):
                self.cli += [flag, self.options[option]]
        self.timeout = float(self.options.get("timeout", "60"))
        self.group = self.options.get("group", "sharedfs")
        if not wire.FS_NAME.fullmatch(self.group):
            raise DriverError(f"cephfs driver: group {self.group!r} must match {wire.FS_NAME.pattern}")
        volumes = [v["name"] for v in json.loads(self._ceph("fs", "volume", "ls", "--format", "json"))]
        self.volume = self.options.get("fs_name") or (volumes[0] if len(volumes) == 1 else "")
        if self.volume not in volumes:
            raise DriverError(f"cephfs driver: set fs_name to one of the cluster's filesystems ({', '.join(volumes)})"
                              if volumes else "cephfs driver: the cluster has no CephFS filesystem")  # fmt: skip
        # Several filesystems: clients must say which (the kernel's fs=, ceph-fuse's client_fs).
        self.fs_options = ((f"fs={self.volume}" if self.client == "kernel" else f"ceph.client_fs={self.volume}"),) \
            if len(volumes) > 1 else ()  # fmt: skip
        self.mons = self.options.get("mons", "")
        self._ceph("fs", "subvolumegroup", "create", self.volume, self.group)  # idempotent

    def _ceph(self, *args: str) -> str:
        try:
            result = subprocess.run([*self.cli, *args], capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DriverError(f"ceph {' '.join(args[:3])}: {e}") from None
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise DriverError(f"ceph {' '.join(args[:3])}: {lines[-1] if lines else f'exit {result.returncode}'}")
        return result.stdout

    def _sub(self, verb: str, name: str, *args: str) -> str:
        """`ceph fs subvolume VERB <volume> <name> … --group_name <group>`."""
        return self._ceph("fs", "subvolume", verb, self.volume, name, *args, "--group_name", self.group)

    def _info(self, name: str) -> Optional[dict]:
        try:
            return json.loads(self._sub("info", name, "--format", "json"))
        except DriverError as e:
            if "does not exist" in str(e) or "ENOENT" in str(e):
                return None
            raise

    def create(self, fs: FsSpec) -> str:
        # `subvolume create` of an existing name succeeds and keeps its data: refuse it instead.
        if self._info(fs.name) is not None:
            raise DriverError(f"subvolume {fs.name} already exists in {self.volume}/{self.group}; "
                              "not reusing another filesystem's data")  # fmt: skip
        try:
            # The quota is the subvolume's size; mode 0777 so any user of the instances may write.
            self._sub("create", fs.name, "--size", str(fs.size_bytes), "--mode", "0777")
            info = self._info(fs.name)
            if info is None:
                raise DriverError(f"subvolume {fs.name} vanished right after its create")
        except DriverError:
            self._remove(fs.name)
            raise
        return self._export(info)

    def _export(self, info: dict) -> str:
        path = info["path"]
        if self.client == "fuse":
            return path
        mons = self.mons or ",".join(info.get("mon_addrs", []))
        if not mons:
            raise DriverError("the cluster named no monitor address; set the cephfs driver's option mons")
        return f"{mons}:{path}"

    def delete(self, fs: FsSpec) -> None:
        if self._info(fs.name) is None:
            return
        # `subvolume rm` leaves the clients authorized on it (with caps on its old path): revoke first.
        self._revoke(fs.name, self._authorized(fs.name))
        self._sub("rm", fs.name)

    def _remove(self, name: str) -> None:
        """Undo a half-made subvolume, best effort."""
        try:
            self._sub("rm", name)
        except DriverError:
            pass

    def _authorized(self, name: str) -> Set[str]:
        """The auth ids the volumes module has authorized on the subvolume (a list of {id: level})."""
        listed = json.loads(self._sub("authorized_list", name) or "[]")
        return {auth for item in listed for auth in item}

    def _revoke(self, name: str, ids: AbstractSet[str]) -> None:
        for auth in sorted(ids):
            # Manila's deny_access: deauthorize (the cephx client goes once it reaches nothing),
            # then evict its sessions so a mounted instance loses access now, not at its next reconnect.
            try:
                self._sub("deauthorize", name, auth)
            except DriverError as e:
                if "doesn't exist" not in str(e):
                    raise
            self._sub("evict", name, auth)

    def set_identities(self, fs: FsSpec, instance_ids: AbstractSet[str]) -> Dict[str, Identity]:
        for instance in instance_ids:
            if not wire.IDENT.fullmatch(instance):
                raise DriverError(f"instance id {instance!r} must match {wire.IDENT.pattern}")
        wanted = {auth_id(fs.name, instance): instance for instance in instance_ids}
        have = self._authorized(fs.name)
        # Only ids this driver makes are revoked: an operator's own authorization stays.
        self._revoke(fs.name, {a for a in have - set(wanted) if a.startswith(PREFIX)})
        for auth in sorted(set(wanted) - have):
            self._sub("authorize", fs.name, auth, "--access_level", "rw")
        keys = self._keys(set(wanted))
        identities: Dict[str, Identity] = {}
        for auth, instance in wanted.items():
            key = keys.get(auth)
            if key is None or not KEY.fullmatch(key):
                raise DriverError(f"cephx client {auth}: no key after authorizing it")
            identities[instance] = Identity(key, self._identity_options(auth))
        return identities

    def _identity_options(self, auth: str) -> Tuple[str, ...]:
        name = f"name={auth}" if self.client == "kernel" else f"ceph.id={auth}"
        return (name, *self.fs_options)

    def _keys(self, ids: AbstractSet[str]) -> Dict[str, str]:
        """The keys of these cephx clients, in one call however many (`auth ls`), not one each."""
        if not ids:
            return {}
        listed = json.loads(self._ceph("auth", "ls", "--format", "json")).get("auth_dump", [])
        return {e["entity"][len("client."):]: e.get("key", "") for e in listed
                if e.get("entity", "").startswith("client.") and e["entity"][len("client."):] in ids}  # fmt: skip

    def inventory(self) -> Optional[Set[str]]:
        """The subvolumes of the group: ours (the group is this driver's alone)."""
        return {item["name"] for item in json.loads(self._ceph("fs", "subvolume", "ls", self.volume, "--group_name",
                                                               self.group, "--format", "json") or "[]")}  # fmt: skip
