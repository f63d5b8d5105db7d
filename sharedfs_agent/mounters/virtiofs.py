"""virtiofs: a share the hypervisor attached (Nova's Manila shares); the export is its tag."""

from __future__ import annotations

import glob
import os
import re
from typing import Optional

from ..errors import InvalidEntry
from .base import Mounter

__all__ = ["VirtiofsMounter"]

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,35}")  # virtio-fs tags are at most 36 bytes


class VirtiofsMounter(Mounter):
    fs_type = "virtiofs"
    kernel_fstypes = frozenset({"virtiofs"})
    helper = ""
    packages = {"debian": "a kernel with CONFIG_VIRTIO_FS (linux-image)", "rhel": "kernel-core"}
    installable = False
    options = {"dax": re.compile(r"always|never|inode")}
    boot_options = ("nofail",)  # a local device of the hypervisor, not a network filesystem

    def check_export(self, export: str) -> str:
        if not _TAG.fullmatch(export):
            raise InvalidEntry(f"export {export!r} is not a virtiofs tag ([A-Za-z0-9._-], at most 36)")
        return export

    def client_missing(self) -> Optional[str]:
        # No mount helper: the kernel does it all. It is there if the kernel knows the type
        # now or has the module to load.
        try:
            with open("/proc/filesystems") as f:
                if any(line.split()[-1] == "virtiofs" for line in f if line.strip()):
                    return None
        except OSError:
            pass
        if glob.glob(f"/lib/modules/{os.uname().release}/kernel/fs/fuse/virtiofs.ko*"):
            return None
        return "virtiofs is not in this kernel: use a kernel built with CONFIG_VIRTIO_FS"
