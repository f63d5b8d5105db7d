"""The driver contract: do_setup, create, delete, and access by address (set_access) or by identity (set_identities), each with the whole wanted set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Dict, Mapping, Optional, Set, Tuple

__all__ = ["Driver", "FsSpec", "Identity"]


@dataclass(frozen=True)
class FsSpec:
    """What a driver gets to create, delete or grant access to a filesystem."""

    name: str
    project: str
    size_bytes: int
    export: str = ""  # given by the admin for `static`; filled by create() otherwise
    mount_options: Tuple[str, ...] = ()  # the entry's; a driver may follow `ro` (the nfs driver does)


@dataclass(frozen=True)
class Identity:
    """What one instance needs to reach a filesystem whose access is by identity: its secret
    (wire.SECRET: it goes into that instance's own view only, never a log or another answer)
    and the mount options that name the identity (e.g. `name=sfs-…`), each wire.OPTION-clean."""

    secret: str = field(repr=False)
    options: Tuple[str, ...] = ()


class Driver:
    """Creates and destroys backing filesystems and manages who may reach them. One object per
    configured backend; the constructor only keeps the options, do_setup() checks them.

    Every method raises DriverError with a message for the filesystem's status on failure.
    """

    name = ""  # the driver's name in --backend NAME=DRIVER and --driver DRIVER
    fs_type = ""  # the type of the filesystems it creates (what agents mount); "" creates none
    # How it lets instances in: "address" (set_access, the instances' addresses) or "identity"
    # (set_identities, one credential per instance, handed to that instance in its own view).
    access_by = "address"

    def __init__(self, options: Mapping[str, str]) -> None:
        self.options = dict(options)

    def do_setup(self, context: Mapping[str, str]) -> None:
        """Check options and reach the backend once at server start."""

    def create(self, fs: FsSpec) -> str:
        """Make the filesystem, reachable by nobody yet; return its export in the agent's syntax."""
        raise NotImplementedError

    def mount_options(self, fs: FsSpec) -> Tuple[str, ...]:
        """Options the backend says a client needs for fs, asked right after create() (Manila's
        `__mount_options`): added to the filesystem's own, which win for the same key. Each is
        checked as the agent's mounter checks an option before it is returned."""
        return ()

    def delete(self, fs: FsSpec) -> None:
        """Destroy it and its data; deleting what is already gone is not an error."""
        raise NotImplementedError

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        """Let exactly these addresses reach fs: the whole wanted set, not a change to apply
        (as Manila's update_access works from the full rule list), so a lost or failed call is
        repaired by the next one. An empty set means nobody; the same set twice is harmless."""
        raise NotImplementedError

    def set_identities(self, fs: FsSpec, instance_ids: AbstractSet[str]) -> Dict[str, Identity]:
        """For access_by = "identity": let exactly these instances reach fs, each by its own
        credential, and return the credential of every one of them. The whole wanted set, like
        set_access: an identity not in it is revoked (and its sessions cut, so a mounted instance
        loses access), the same set twice is harmless, an empty set means nobody."""
        raise NotImplementedError

    def inventory(self) -> Optional[Set[str]]:
        """The names of the filesystems this backend holds that it made (for the reconcile:
        one with no row is removed). None: this driver cannot tell, and nothing is removed."""
        return None
