"""GlusterFS through the FUSE client: `host:/volume[/subdir]`, backup volfile servers."""

from __future__ import annotations

import re

from ..errors import InvalidEntry
from .base import HOST, NUMBER, SEGMENT, Mounter

__all__ = ["GlusterfsMounter"]

_SPACE = re.compile(r"\s")
_VOLUME = r"[A-Za-z0-9_-]{1,64}"
_EXPORT = re.compile(rf"(?P<host>{HOST}):/?(?P<volume>{_VOLUME})(?P<subdir>(?:/{SEGMENT})*)")


class GlusterfsMounter(Mounter):
    fs_type = "glusterfs"
    kernel_fstypes = frozenset({"fuse.glusterfs"})
    helper = "mount.glusterfs"
    packages = {"debian": "glusterfs-client", "rhel": "glusterfs-fuse"}
    fuse = True
    # mount.glusterfs's own options that are safe to take from a source. Left out on purpose:
    # log-file and dump-fuse (write any path as root), xlator-option and fuse-mountopts (pass
    # anything through), root-squash switches, oom-score-adj, process-name, aux-gfid-mount.
    options = {
        "backup-volfile-servers": re.compile(rf"{HOST}(?::{HOST}){{0,15}}"),
        "transport": re.compile(r"tcp|rdma"),
        "log-level": re.compile(r"CRITICAL|ERROR|WARNING|INFO|DEBUG|TRACE|NONE"),
        "direct-io-mode": re.compile(r"enable|disable|auto"),
        "use-readdirp": re.compile(r"yes|no"),
        "attribute-timeout": NUMBER,
        "entry-timeout": NUMBER,
        "negative-timeout": NUMBER,
        "gid-timeout": NUMBER,
        "fetch-attempts": NUMBER,
        "background-qlen": NUMBER,
        "congestion-threshold": NUMBER,
        "reader-thread-count": NUMBER,
        "lru-limit": NUMBER,
        "acl": None,
        "resolve-gids": None,
        "enable-ino32": None,
    }

    def check_export(self, export: str) -> str:
        match = _EXPORT.fullmatch(export)
        if not match:
            raise InvalidEntry(f"export {export!r} is not host:/volume[/subdir]")
        return f"{match['host']}:/{match['volume']}{match['subdir']}"

    def check_mount_point(self, mount_point: str) -> None:
        # mount.glusterfs is a shell script that expands the mount point unquoted.
        if _SPACE.search(mount_point):
            raise InvalidEntry(f"mount_point {mount_point!r}: mount.glusterfs cannot handle white space in it")

    def same_source(self, export: str, source: str) -> bool:
        # The kernel shows the source as the helper was given it: "host:/vol" or "host:vol".
        host, _, path = source.partition(":")
        return f"{host}:/{path.lstrip('/')}" == export
