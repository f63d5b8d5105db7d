"""The driver interface from the seed: do_setup, create, delete, attach(fs_name, ip_list), unattach(fs_name, ip_list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["Driver", "FsSpec"]


@dataclass(frozen=True)
class FsSpec:
    """What a driver gets to create or delete a filesystem."""

    name: str
    project: str
    size_bytes: int
    export: str = ""  # given by the admin for `static`; filled by create() otherwise


class Driver:
    """Creates and destroys backing filesystems and manages who may reach them.

    Every method raises DriverError with a message for the filesystem's status on failure.
    """

    name = ""
    fs_type = ""  # the type of the filesystems it creates (what agents mount)

    def __init__(self, options: Mapping[str, str]) -> None:
        self.options = dict(options)

    def do_setup(self, context: Mapping[str, str]) -> None:
        """Check options and reach the backend once at server start."""

    def create(self, fs: FsSpec) -> str:
        """Make the filesystem; return its export in the agent's syntax."""
        raise NotImplementedError

    def delete(self, fs: FsSpec) -> None:
        """Destroy it and its data; deleting what is already gone is not an error."""
        raise NotImplementedError

    def attach(self, fs_name: str, ip_list: Sequence[str]) -> None:
        """Let these addresses reach the filesystem."""

    def unattach(self, fs_name: str, ip_list: Sequence[str]) -> None:
        """Stop these addresses reaching it."""
