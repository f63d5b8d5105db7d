"""The mounter contract: everything the agent knows about one filesystem type lives behind it."""

from __future__ import annotations

import re
from typing import FrozenSet, List, Mapping, Optional, Pattern, Tuple

from ..errors import InvalidEntry
from ..fstab import MARKER
from ..model import Filesystem, FstabEntry, MountRecord

__all__ = ["Mounter", "COMMON_OPTIONS", "NUMBER", "HOST", "SEGMENT", "PATH"]

NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")
# A DNS name or IPv4 address, or an IPv6 address in brackets.
HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"

# One component of a path on a server: never "." or "..", nothing a shell or fstab would read.
SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._~+-]{1,255}"
# An absolute path of such components; a trailing "/" is accepted (callers drop it).
PATH = rf"/(?:{SEGMENT}(?:/{SEGMENT})*/?)?"

# Options every type accepts: access-time flags, and the restrictive security flags.
# The permissive ones (suid, dev, exec) are decided by validation against the config.
COMMON_OPTIONS: Mapping[str, Optional[Pattern]] = {
    name: None for name in ("noatime", "relatime", "nodiratime", "strictatime", "nosuid", "nodev", "noexec")
}


# Probe errors a fresh mount cures: a stale NFS handle, a FUSE client that died.
REMOUNT_ON: FrozenSet[str] = frozenset({"ESTALE", "ENOTCONN"})


class Mounter:
    """One filesystem type: it decides (validation, argv, fstab line, health rules) and never
    acts; host/ runs what it decides. Subclasses set the class attributes and check the export."""

    # The type's name in desired documents.
    fs_type: str = ""
    # How its mounts appear in mountinfo's fstype field.
    kernel_fstypes: FrozenSet[str] = frozenset()
    # The type mount(8) is given (-t) and our fstab lines carry; empty: fs_type. A line is traced
    # back to its mounter by it when the ledger is gone (a boot mounted it before the agent ran).
    mount_type: str = ""
    # The helper whose presence means the client is installed, and the package that brings it.
    helper: str = ""
    packages: Mapping[str, str] = {}  # distribution family ("debian", "rhel") -> package
    # May an installer take `packages` from the distribution's own repositories? (Not Lustre's
    # client, which comes from the site's repository, nor a kernel feature like virtiofs.)
    installable: bool = True
    # With no helper: the kernel module (path below kernel/fs/, no .ko) that brings the type.
    kernel_module: str = ""
    # Options an entry may ask for beyond COMMON_OPTIONS: name -> value pattern, None for a flag.
    options: Mapping[str, Optional[Pattern]] = {}
    # Added to the fstab line only, so a boot never waits on or fails for a server that is down.
    boot_options: Tuple[str, ...] = ("_netdev", "nofail")
    # Its client is a user-space daemon that must outlive the agent (docs/design.md, invariant 8).
    fuse: bool = False
    # Probe errnos ("ESTALE") that mean "remount it"; any other probe failure means "hung, leave it".
    remount_on: FrozenSet[str] = REMOUNT_ON
    # The option that names the file holding an entry's secret (wire.SECRET_KEY), e.g. "secretfile";
    # empty: this type takes no secret, and an entry that carries one is refused.
    secret_option: str = ""

    def secret_file(self, fs: Filesystem) -> str:
        """The file fs's secret goes to (named by its secret_option), "" when it has none."""
        if not (fs.secret and self.secret_option):
            return ""
        prefix = self.secret_option + "="
        return next((o[len(prefix) :] for o in fs.options if o.startswith(prefix)), "")

    def check_export(self, export: str) -> str:
        """Return the export in canonical form or raise InvalidEntry saying what is wrong."""
        raise NotImplementedError

    def check_mount_point(self, mount_point: str) -> None:
        """Raise InvalidEntry for a (generally valid) mount point this type's helper mishandles."""

    def check_option(self, option: str) -> None:
        """Raise InvalidEntry unless `option` (one item, no commas) is allowed for this type."""
        key, has_value, value = option.partition("=")
        allowed = {**COMMON_OPTIONS, **self.options}
        if key not in allowed:
            raise InvalidEntry(f"option {key!r} is not allowed for {self.fs_type}")
        pattern = allowed[key]
        if pattern is None and has_value:
            raise InvalidEntry(f"option {key!r} takes no value")
        if pattern is not None and not (has_value and pattern.fullmatch(value)):
            raise InvalidEntry(f"option {option!r}: value does not match {pattern.pattern}")

    def mount_options(self, fs: Filesystem) -> Tuple[str, ...]:
        """The -o list for mount(8): access first, then the validated options."""
        return (fs.access.value, *fs.options)

    def fstab_entry(self, fs: Filesystem, mount_timeout: float) -> FstabEntry:
        """Our line for fs: boot-safe options and the marker that says it is ours."""
        timeout = f"x-systemd.mount-timeout={int(mount_timeout)}"
        mntops = ",".join((*self.mount_options(fs), *self.boot_options, timeout, MARKER))
        return FstabEntry(fs.export, fs.mount_point, self.type_for_mount, mntops, 0, 0)

    @property
    def type_for_mount(self) -> str:
        return self.mount_type or self.fs_type

    def same_source(self, export: str, source: str) -> bool:
        """Does a mountinfo source name this (canonical) export? Types override for aliases."""
        return source == export

    def is_mount_of(self, fs_export: str, record: MountRecord) -> bool:
        """Is this mountinfo record a mount of fs_export by this type (plan and verify ask)?"""
        return record.fstype in self.kernel_fstypes and self.same_source(fs_export, record.source)

    def client_hint(self) -> str:
        """What to install when host/ finds the client missing, for the status line."""
        return (
            f"{self.fs_type} client not installed: install {self.packages.get('debian', '?')} "
            f"(Debian/Ubuntu) or {self.packages.get('rhel', '?')} (RHEL family)"
        )

    def mount_argv(self, fs: Filesystem) -> List[str]:
        """The mount(8) command for fs; host/ runs it (in its own scope when `fuse`)."""
        return ["mount", "-t", self.type_for_mount, "-o", ",".join(self.mount_options(fs)), fs.export, fs.mount_point]

    def unmount_argv(self, mount_point: str) -> List[str]:
        """The unmount command: never forced, never lazy, so a busy filesystem stays and says so."""
        return ["umount", mount_point]

    def describe(self) -> str:
        """The type and its kernel names, for logs."""
        return f"{self.fs_type} ({', '.join(sorted(self.kernel_fstypes))})"
