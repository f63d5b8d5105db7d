"""CephFS: the kernel client (`mon1:6789,mon2:6789:/path`), and ceph-fuse; secrets only ever by file."""

from __future__ import annotations

import re
from typing import List

from ..errors import InvalidEntry
from ..model import Filesystem, FstabEntry, MountRecord
from .base import HOST, PATH, Mounter

__all__ = ["CephfsMounter", "CephFuseMounter"]

_MON = rf"{HOST}(?::[0-9]{{1,5}})?"
_EXPORT = re.compile(rf"(?P<mons>{_MON}(?:,{_MON}){{0,15}}):(?P<path>{PATH})")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The key never travels in argv, fstab or logs: only a file under /etc/ceph may hold it.
_SECRETFILE = re.compile(r"/etc/ceph/[A-Za-z0-9_.-]{1,128}")


class CephfsMounter(Mounter):
    fs_type = "cephfs"
    kernel_fstypes = frozenset({"ceph"})
    mount_type = "ceph"
    helper = "mount.ceph"
    packages = {"debian": "ceph-common", "rhel": "ceph-common"}
    secret_option = "secretfile"
    options = {
        "name": _NAME,
        "secretfile": _SECRETFILE,
        "fs": _NAME,
        "mds_namespace": _NAME,
        "recover_session": re.compile(r"no|clean"),
        "rasize": re.compile(r"[0-9]{1,10}"),
        "wsize": re.compile(r"[0-9]{1,10}"),
        "ms_mode": re.compile(r"legacy|crc|secure|prefer-crc|prefer-secure"),
        **{flag: None for flag in ("noshare", "dcache", "nodcache", "acl", "noacl", "nowsync", "wsync")},
    }  # fmt: skip

    def check_option(self, option: str) -> None:
        if option.split("=", 1)[0] in ("secret", "key"):
            raise InvalidEntry("a CephFS key may not be given inline (it would land in fstab, argv and logs); "
                               "use secretfile=/etc/ceph/NAME.secret")  # fmt: skip
        super().check_option(option)

    def check_export(self, export: str) -> str:
        if not _EXPORT.fullmatch(export):
            raise InvalidEntry(f"export {export!r} is not mon[:port][,mon[:port]…]:/path")
        return export


class CephFuseMounter(Mounter):
    """ceph-fuse: `export` is `/path` inside the filesystem; monitors come from /etc/ceph/ceph.conf."""

    fs_type = "ceph-fuse"
    kernel_fstypes = frozenset({"fuse.ceph-fuse"})
    mount_type = "fuse.ceph"
    helper = "ceph-fuse"
    packages = {"debian": "ceph-fuse", "rhel": "ceph-fuse"}
    fuse = True
    secret_option = "ceph.keyfile"
    options = {
        "ceph.id": _NAME,
        "ceph.client_fs": _NAME,
        "ceph.conf": re.compile(r"/etc/ceph/[A-Za-z0-9_.-]{1,128}\.conf"),
        "ceph.keyring": re.compile(r"/etc/ceph/[A-Za-z0-9_.-]{1,128}"),
        # The bare key in a file, like the kernel client's secretfile (ceph-fuse's --keyfile): seen working live.
        "ceph.keyfile": _SECRETFILE,
    }

    def check_export(self, export: str) -> str:
        if not re.fullmatch(PATH, export):
            raise InvalidEntry(f"export {export!r} is not a /path inside the CephFS filesystem")
        return export

    def _options(self, fs: Filesystem) -> List[str]:
        return [*self.mount_options(fs), f"ceph.client_mountpoint={fs.export}"]

    def mount_argv(self, fs: Filesystem) -> List[str]:
        return ["mount", "-t", self.mount_type, "-o", ",".join(self._options(fs)), "none", fs.mount_point]

    def fstab_entry(self, fs: Filesystem, mount_timeout: float) -> FstabEntry:
        entry = super().fstab_entry(fs, mount_timeout)
        options = ",".join((f"ceph.client_mountpoint={fs.export}", entry.mntops))
        return FstabEntry("none", fs.mount_point, self.mount_type, options, 0, 0)

    def is_mount_of(self, fs_export: str, record: MountRecord) -> bool:
        # ceph-fuse shows "ceph-fuse" as its source whatever it mounted; the ledger tells the rest.
        return record.fstype in self.kernel_fstypes
