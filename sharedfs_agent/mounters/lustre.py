"""Lustre: `mgsnid[,nid…][:failover-mgsnid…]:/fsname` with NIDs like `10.0.0.1@tcp` or `ib1@o2ib`; flock by default."""

from __future__ import annotations

import re
from typing import Tuple

from ..errors import InvalidEntry
from ..model import Filesystem
from .base import SEGMENT, Mounter

__all__ = ["LustreMounter"]

# A NID is address@network: an IPv4 address or host name, and tcp / o2ib / kfi with a number.
_NID = r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[A-Za-z][A-Za-z0-9-]{0,62})@(?:tcp|o2ib|kfi|gni|ptl4)[0-9]{0,3}"
_MGS = rf"{_NID}(?:,{_NID}){{0,7}}"
_EXPORT = re.compile(rf"(?P<mgs>{_MGS}(?::{_MGS}){{0,3}}):/(?P<fsname>[A-Za-z0-9_]{{1,8}})(?P<subdir>(?:/{SEGMENT})*)")
_LOCKING = ("flock", "localflock", "noflock")


class LustreMounter(Mounter):
    fs_type = "lustre"
    kernel_fstypes = frozenset({"lustre"})
    helper = "mount.lustre"
    packages = {"debian": "lustre-client-utils", "rhel": "lustre-client"}
    installable = False
    options = {
        **{flag: None for flag in ("flock", "localflock", "noflock", "user_xattr", "nouser_xattr", "acl", "noacl",
                                   "lazystatfs", "nolazystatfs", "user_fid2path", "nouser_fid2path")},
        "retry": re.compile(r"[0-9]{1,3}"),
    }  # fmt: skip

    def check_export(self, export: str) -> str:
        if not _EXPORT.fullmatch(export):
            raise InvalidEntry(
                f"export {export!r} is not mgsnid[:failover-mgsnid]:/fsname (a NID is like 10.0.0.1@tcp)"
            )
        return export

    def mount_options(self, fs: Filesystem) -> Tuple[str, ...]:
        # flock gives applications cluster-wide POSIX locks, what most expect of a shared filesystem.
        locking = () if any(o in _LOCKING for o in fs.options) else ("flock",)
        return (fs.access.value, *fs.options, *locking)
