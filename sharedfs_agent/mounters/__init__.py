"""Mounter registry: a literal dict of the built-in types, plus the `sharedfs_agent.mounters.v1` entry points."""

from __future__ import annotations

import logging
from typing import Dict, Iterable, Mapping

from ..plugins import entry_points as installed_entry_points
from .base import Mounter
from .cephfs import CephfsMounter, CephFuseMounter
from .glusterfs import GlusterfsMounter
from .lustre import LustreMounter
from .nfs import NfsMounter
from .virtiofs import VirtiofsMounter

__all__ = ["Mounter", "BUILTIN", "ENTRY_POINT_GROUP", "registry"]

log = logging.getLogger(__name__)

# Versioned: a plugin written against another Mounter contract is simply not seen.
ENTRY_POINT_GROUP = "sharedfs_agent.mounters.v1"

# Built in by name, not by discovery: what ships is visible here (kubelet's plugins.go).
BUILTIN: Mapping[str, type] = {
    "glusterfs": GlusterfsMounter,
    "nfs": NfsMounter,
    "lustre": LustreMounter,
    "cephfs": CephfsMounter,
    "ceph-fuse": CephFuseMounter,
    "virtiofs": VirtiofsMounter,
}


def _entry_points() -> Iterable:
    return installed_entry_points(ENTRY_POINT_GROUP)  # importlib.metadata only when a plugin is installed


def registry(entry_points: Iterable = None) -> Dict[str, Mounter]:
    """fs_type -> mounter. A third-party plugin that fails to load is logged and skipped;
    one that claims a built-in type or another plugin's type is refused (two matches are a bug)."""
    mounters: Dict[str, Mounter] = {name: cls() for name, cls in BUILTIN.items()}
    for ep in _entry_points() if entry_points is None else entry_points:
        try:
            mounter = ep.load()()
            if not isinstance(mounter, Mounter) or not mounter.fs_type:
                raise TypeError("not a Mounter with an fs_type")
        except Exception as e:  # a broken plugin must not stop the agent
            log.error("mounter plugin %s skipped: %s", ep.name, e)
            continue
        if mounter.fs_type in mounters:
            log.error("mounter plugin %s skipped: type %r is already provided", ep.name, mounter.fs_type)
            continue
        mounters[mounter.fs_type] = mounter
    return mounters
