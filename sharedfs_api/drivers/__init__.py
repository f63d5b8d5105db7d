"""Driver registry: the built-in drivers by name."""

from __future__ import annotations

from typing import Dict, Mapping

from .base import Driver, FsSpec, Identity
from .cephfs import CephfsDriver
from .ganesha import GaneshaDriver
from .glusterfs import GlusterfsDriver
from .manila import ManilaDriver
from .static import StaticDriver

__all__ = ["Driver", "FsSpec", "Identity", "DRIVERS", "make_driver"]

DRIVERS: Dict[str, type] = {"static": StaticDriver, "glusterfs": GlusterfsDriver, "cephfs": CephfsDriver,
                           "manila": ManilaDriver, "nfs": GaneshaDriver}  # fmt: skip


def make_driver(name: str, options: Mapping[str, str]) -> Driver:
    try:
        return DRIVERS[name](options)
    except KeyError:
        raise ValueError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})") from None
