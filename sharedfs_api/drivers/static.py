"""`static`: registers an export that already exists; the admin manages its access outside sharedfs."""

from __future__ import annotations

from typing import AbstractSet

from ..errors import DriverError
from .base import Driver, FsSpec

__all__ = ["StaticDriver"]


class StaticDriver(Driver):
    name = "static"

    def create(self, fs: FsSpec) -> str:
        if not fs.export:
            raise DriverError("the static driver needs the export of an existing share")
        return fs.export

    def delete(self, fs: FsSpec) -> None:
        """The share is not ours to destroy: only its registration goes."""

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        """The share's access list is the admin's, kept outside sharedfs: nothing to do."""
