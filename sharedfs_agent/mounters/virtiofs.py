"""virtiofs: a share the hypervisor attached (Nova's Manila shares); the export is its tag."""

from __future__ import annotations

import re

from ..errors import InvalidEntry
from .base import Mounter

__all__ = ["VirtiofsMounter"]

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,35}")  # virtio-fs tags are at most 36 bytes


class VirtiofsMounter(Mounter):
    fs_type = "virtiofs"
    kernel_fstypes = frozenset({"virtiofs"})
    helper = ""  # no mount helper: the kernel does it all, if it knows the type or can load it
    kernel_module = "fuse/virtiofs"
    packages = {"debian": "a kernel with CONFIG_VIRTIO_FS (linux-image)", "rhel": "kernel-core"}
    installable = False
    options = {"dax": re.compile(r"always|never|inode")}
    boot_options = ("nofail",)  # a local device of the hypervisor, not a network filesystem

    def check_export(self, export: str) -> str:
        if not _TAG.fullmatch(export):
            raise InvalidEntry(f"export {export!r} is not a virtiofs tag ([A-Za-z0-9._-], at most 36)")
        return export

    def client_hint(self) -> str:
        return "virtiofs is not in this kernel: use a kernel built with CONFIG_VIRTIO_FS"
