"""`nfs` on NFS-Ganesha: a btrfs subvolume per filesystem (its qgroup limit the size), exported over D-Bus."""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
from contextlib import contextmanager
from typing import AbstractSet, Iterable, Iterator, List, Mapping, Optional, Set

from sharedfs_agent import wire

from ..errors import DriverError
from .base import Driver, FsSpec

__all__ = ["GaneshaDriver", "render_export", "check_path", "SQUASH"]

# Manila's ganesha helper starts its export id counter at 100 and bumps it for each export; ids
# are 16 bits on ganesha's D-Bus (RemoveExport takes a uint16) and never reused here, so an old
# client handle can never name a newer export.
FIRST_EXPORT_ID = 101
LAST_EXPORT_ID = 65535
INDEX = "INDEX.conf"
COUNTER = ".next-export-id"
# What a value spliced into ganesha's config may hold: no quote, brace, semicolon, comment,
# space or newline can end a token or a block early. (Path names are the operator's and ours.)
SAFE_PATH = re.compile(r"/(?:[A-Za-z0-9_.+-]+/?)*")
# What instances mount from: a host name or an IPv4 address (the export string is HOST:/NAME).
EXPORT_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
SQUASH = {"root_squash": "Root_Squash", "no_root_squash": "No_Root_Squash", "all_squash": "All_Squash"}
DBUS_DEST = ("--dest=org.ganesha.nfsd", "/org/ganesha/nfsd/ExportMgr")


def check_path(path: str, what: str) -> str:
    """`path` unchanged if it is absolute, normalised and made only of config-safe characters."""
    if not SAFE_PATH.fullmatch(path) or os.path.normpath(path) != path or "/../" in path + "/":
        raise ValueError(f"{what} {path!r} must be an absolute, normalised path of letters, digits and _.+-")
    return path


def _check_name(name: str) -> str:
    if not wire.FS_NAME.fullmatch(name):
        raise ValueError(f"filesystem name {name!r} does not match {wire.FS_NAME.pattern}")
    return name


def _clients(addresses: Iterable[str]) -> List[str]:
    """The addresses one by one, canonical (wire.check_address), sorted: nothing else reaches `Clients`."""
    for address in addresses:
        if wire.check_address(address) != address:
            raise ValueError(f"address {address!r} is not in canonical form")
    return sorted(addresses)


def render_export(export_id: int, path: str, pseudo: str, addresses: AbstractSet[str], squash: str = "root_squash",
                  read_only: bool = False) -> str:  # fmt: skip
    """One EXPORT block: nobody at the export level (Access_Type = None), and one CLIENT block with
    exactly `addresses`. ValueError for any value that could break out of its place in the syntax."""
    if not FIRST_EXPORT_ID <= export_id <= LAST_EXPORT_ID:
        raise ValueError(f"export id {export_id} is outside {FIRST_EXPORT_ID}..{LAST_EXPORT_ID}")
    check_path(path, "export path")
    check_path(pseudo, "pseudo path")
    if squash not in SQUASH:
        raise ValueError(f"squash {squash!r}: expected one of {', '.join(SQUASH)}")
    clients = _clients(addresses)
    lines = [
        "EXPORT {",
        f"    Export_Id = {export_id};",
        f"    Path = {path};",
        f"    Pseudo = {pseudo};",
        "    Protocols = 4;",  # v4.1/4.2 through the pseudo path; no v3 (no MOUNT protocol to guard)
        "    Transports = TCP;",
        "    SecType = sys;",
        "    Access_Type = None;",  # anyone not listed below: nothing
        f"    Squash = {SQUASH[squash]};",
        "    Anonymous_Uid = 65534;",  # squashed users are nobody, as with the kernel's nfsd (ganesha's own default is -2)
        "    Anonymous_Gid = 65534;",
        "    FSAL { Name = VFS; }",
    ]
    if clients:
        lines += ["    CLIENT {", f"        Clients = {', '.join(clients)};",
                  f"        Access_Type = {'RO' if read_only else 'RW'};", f"        Squash = {SQUASH[squash]};",
                  "    }"]  # fmt: skip
    return "\n".join(lines + ["}", ""])


def _export_id(text: str) -> int:
    match = re.search(r"^\s*Export_Id\s*=\s*(\d+)\s*;", text, re.MULTILINE)
    if not match:
        raise DriverError("export file has no Export_Id")
    return int(match.group(1))


def _mounted(path: str) -> bool:
    """Whether `path` is a mount point in this process's mount table (a subvolume alone is not one)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == path:
                return True
    return False


class GaneshaDriver(Driver):
    """Options: export_root (required: a directory on btrfs; one subvolume per filesystem below it),
    export_dir (the per-export config files and their INDEX.conf, which ganesha.conf must
    %include; default /etc/ganesha/export.d), export_host (what instances mount from; default this
    host's name), dbus_address (ganesha's bus; default the system bus), squash (root_squash,
    no_root_squash or all_squash; default root_squash), timeout (seconds per command, 60)."""

    name = "nfs"
    fs_type = "nfs"

    def do_setup(self, context: Mapping[str, str]) -> None:
        try:
            self.export_root = check_path(self.options.get("export_root", ""), "export_root")
            self.export_dir = check_path(self.options.get("export_dir", "/etc/ganesha/export.d"), "export_dir")
        except ValueError as e:
            raise DriverError(f"nfs driver: {e}") from None
        self.export_host = self.options.get("export_host") or socket.gethostname()
        if not EXPORT_HOST.fullmatch(self.export_host):
            raise DriverError(f"nfs driver: export_host {self.export_host!r} is not a host name or address")
        self.squash = self.options.get("squash", "root_squash")
        if self.squash not in SQUASH:
            raise DriverError(f"nfs driver: squash {self.squash!r}: expected one of {', '.join(SQUASH)}")
        self.dbus_address = self.options.get("dbus_address", "")
        self.timeout = float(self.options.get("timeout", "60"))
        fstype = self._run("stat", "-f", "--format=%T", self.export_root).strip()
        if fstype != "btrfs":
            raise DriverError(f"nfs driver: export_root {self.export_root} is on {fstype}, not btrfs "
                              "(the size is a btrfs qgroup limit)")  # fmt: skip
        self._run("btrfs", "quota", "enable", self.export_root)
        os.makedirs(self.export_dir, exist_ok=True)
        with self._locked():
            if not os.path.exists(self._index()):
                self._write_index()
        self._dbus("ShowExports")  # ganesha answers now, or the server does not start
        self._restore()

    # -- commands ---------------------------------------------------------------------------

    def _run(self, *argv: str) -> str:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DriverError(f"{argv[0]} {argv[1]}: {e}") from None
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()
            # dbus-send puts ganesha's summary first ("Error ...: 0 export entries ... added
            # because ..."), the config file's details after it; other tools end with the cause.
            said = next((line for line in lines if line.startswith("Error ")), lines[-1])
            raise DriverError(f"{' '.join(argv[:3])}: {said}")
        return result.stdout

    def _dbus(self, method: str, *args: str) -> str:
        """One ExportMgr call with dbus-send, as Manila's ganesha helper makes it."""
        bus = f"--bus={self.dbus_address}" if self.dbus_address else "--system"
        return self._run("dbus-send", "--print-reply", bus, *DBUS_DEST, f"org.ganesha.nfsd.exportmgr.{method}", *args)

    # -- files ------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.export_root, _check_name(name))

    def _conf(self, name: str) -> str:
        return os.path.join(self.export_dir, _check_name(name) + ".conf")

    def _index(self) -> str:
        return os.path.join(self.export_dir, INDEX)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer of export_dir at a time, across the server's processes (the id counter, INDEX)."""
        with open(os.path.join(self.export_dir, ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _write(self, path: str, text: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _names(self) -> List[str]:
        return sorted(f[: -len(".conf")] for f in os.listdir(self.export_dir)
                      if f.endswith(".conf") and f != INDEX and wire.FS_NAME.fullmatch(f[: -len(".conf")]))  # fmt: skip

    def _write_index(self) -> None:
        """INDEX.conf: one %include per export file, what ganesha reads again when it restarts."""
        self._write(self._index(), "".join(f"%include {self._conf(n)}\n" for n in self._names()))

    def _next_id(self) -> int:
        counter = os.path.join(self.export_dir, COUNTER)
        try:
            with open(counter, encoding="utf-8") as f:
                export_id = int(f.read().strip())
        except FileNotFoundError:
            export_id = FIRST_EXPORT_ID
        if export_id > LAST_EXPORT_ID:
            raise DriverError(f"no export id left: ganesha's are 16 bits and {LAST_EXPORT_ID} was given out")
        self._write(counter, f"{export_id + 1}\n")
        return export_id

    def _render(self, fs: FsSpec, export_id: int, addresses: AbstractSet[str]) -> str:
        try:
            return render_export(export_id, self._path(fs.name), f"/{fs.name}", addresses, self.squash,
                                 read_only="ro" in fs.mount_options)  # fmt: skip
        except ValueError as e:
            raise DriverError(f"access list refused: {e}") from None

    # -- the contract -----------------------------------------------------------------------

    def create(self, fs: FsSpec) -> str:
        try:
            path = self._path(fs.name)
        except ValueError as e:
            raise DriverError(str(e)) from None
        if os.path.lexists(path) or os.path.exists(self._conf(fs.name)):
            raise DriverError(f"{path} already exists; not reusing another filesystem's data")
        try:
            self._run("btrfs", "subvolume", "create", path)
            self._run("btrfs", "qgroup", "limit", str(fs.size_bytes), path)
            # Root is squashed, so the top is writable by all, sticky like /tmp: each user (or
            # the instance's root, as nobody) makes their own entries and removes only those.
            os.chmod(path, 0o1777)
            # ganesha's VFS exports mount points only (it cannot list subvolumes on Debian's
            # build): the subvolume is bind-mounted on itself.
            self._run("mount", "--bind", path, path)
            with self._locked():
                export_id = self._next_id()
                self._write(self._conf(fs.name), self._render(fs, export_id, set()))
                self._dbus("AddExport", f"string:{self._conf(fs.name)}", f"string:EXPORT(Export_Id={export_id})")
                self._write_index()
        except DriverError:
            self._destroy(fs.name)
            raise
        return f"{self.export_host}:/{fs.name}"

    def delete(self, fs: FsSpec) -> None:
        self._destroy(fs.name, strict=True)

    def _destroy(self, name: str, strict: bool = False) -> None:
        """Remove the export, its file, the mount and the subvolume, each if there. Errors from the
        steps that may find nothing to undo are ignored; with `strict`, a subvolume that stays is one."""
        conf, path = self._conf(name), self._path(name)
        with self._locked():
            if os.path.exists(conf):
                with open(conf, encoding="utf-8") as f:
                    export_id = _export_id(f.read())
                try:
                    self._dbus("RemoveExport", f"uint16:{export_id}")
                except DriverError as e:
                    if "not found" not in str(e) and strict:
                        raise
                os.unlink(conf)
            self._write_index()
        if _mounted(path):
            self._run("umount", path)
        if os.path.isdir(path):
            try:
                subvolume = self._run("btrfs", "inspect-internal", "rootid", path).strip()
                self._run("btrfs", "subvolume", "delete", path)
            except DriverError:
                if strict:
                    raise
                return
            try:  # its qgroup would stay behind, counted in `btrfs qgroup show`
                self._run("btrfs", "qgroup", "destroy", f"0/{subvolume}", self.export_root)
            except DriverError:
                pass

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        # The whole file rewritten, then UpdateExport: what was allowed and is not wanted now goes.
        conf = self._conf(fs.name)
        with self._locked():
            try:
                with open(conf, encoding="utf-8") as f:
                    old = f.read()
            except FileNotFoundError:
                raise DriverError(f"no ganesha export for {fs.name}") from None
            export_id = _export_id(old)
            self._write(conf, self._render(fs, export_id, addresses))
            try:
                self._dbus("UpdateExport", f"string:{conf}", f"string:EXPORT(Export_Id={export_id})")
            except DriverError:
                self._write(conf, old)  # the file stays what ganesha runs, as Manila's helper does
                raise

    def inventory(self) -> Optional[Set[str]]:
        """The export files in export_dir: ours (export_dir is this driver's alone)."""
        return set(self._names())

    def _restore(self) -> None:
        """After a reboot: the bind mounts again, and any export ganesha did not load (it read
        INDEX.conf before the mounts were back) added again."""
        for name in self._names():
            path = self._path(name)
            if os.path.isdir(path) and not _mounted(path):
                self._run("mount", "--bind", path, path)
                with open(self._conf(name), encoding="utf-8") as f:
                    export_id = _export_id(f.read())
                try:
                    self._dbus("AddExport", f"string:{self._conf(name)}", f"string:EXPORT(Export_Id={export_id})")
                except DriverError:
                    pass  # ganesha had it already
