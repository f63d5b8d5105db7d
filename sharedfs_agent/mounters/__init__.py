"""Mounter registry: a literal dict of the built-in types, plus the `sharedfs_agent.mounters.v1` entry points."""

from __future__ import annotations

from typing import Dict, Iterable, Mapping

from ..plugins import load
from .base import Mounter
from .cephfs import CephfsMounter, CephFuseMounter
from .glusterfs import GlusterfsMounter
from .lustre import LustreMounter
from .nfs import NfsMounter
from .virtiofs import VirtiofsMounter

__all__ = ["Mounter", "BUILTIN", "ENTRY_POINT_GROUP", "registry"]


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


def _check(mounter: object) -> Mounter:
    if not isinstance(mounter, Mounter) or not mounter.fs_type:
        raise TypeError("not a Mounter with an fs_type")
    return mounter


def registry(entry_points: Iterable = None) -> Dict[str, Mounter]:
    """fs_type -> mounter. A third-party plugin that fails to load is logged and skipped;
    one that claims a built-in type or another plugin's type is refused (two matches are a bug)."""
    return load("mounter", ENTRY_POINT_GROUP, BUILTIN, _check, lambda mounter: mounter.fs_type, found=entry_points)
