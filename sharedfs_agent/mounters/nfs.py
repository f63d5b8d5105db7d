"""NFS v3, v4.1, v4.2 through the kernel client: `host:/path` or `[IPv6]:/path`, cloud-safe defaults."""

from __future__ import annotations

import re
from typing import Tuple

from ..errors import InvalidEntry
from ..model import Filesystem
from .base import HOST, NUMBER, PATH, Mounter

__all__ = ["NfsMounter"]

_EXPORT = re.compile(rf"(?P<host>{HOST}):(?P<path>{PATH})")
_PORT = re.compile(r"[0-9]{1,5}")
# What the field recommends for cloud use (AWS EFS, Azure NetApp Files, GCP Filestore guides):
# hard mounts with long timeouts, no reserved source port (NAT and many clients).
DEFAULTS = ("hard", "timeo=600", "retrans=2", "noresvport")
# NFSv3 over TCP for both the NFS and the MOUNT protocol unless the entry says otherwise: UDP NFS
# is disabled in current kernels, and without mountproto mount.nfs may ask mountd over UDP first,
# which through a TCP-only path (a firewall, a forwarded port) hangs for the whole mount timeout.
# An IPv6 literal needs the netids that end in 6 (nfs(5), "proto").
V3_TRANSPORT = ("proto", "mountproto")
_EXCLUSIVE = (("hard", "soft"), ("noresvport", "resvport"), ("lock", "nolock"), ("ac", "noac"))


class NfsMounter(Mounter):
    fs_type = "nfs"
    kernel_fstypes = frozenset({"nfs", "nfs4"})
    helper = "mount.nfs"
    packages = {"debian": "nfs-common", "rhel": "nfs-utils"}
    options = {
        # NFSv4.0 is left out on purpose: its callback channel has the server connect back to
        # the client, which breaks behind NAT and through forwarded ports.
        "vers": re.compile(r"3|4\.1|4\.2"),
        "nfsvers": re.compile(r"3|4\.1|4\.2"),
        "proto": re.compile(r"tcp|tcp6|rdma|rdma6"),
        "port": _PORT,
        "mountport": _PORT,
        "mountproto": re.compile(r"tcp|tcp6"),
        "timeo": NUMBER,
        "retrans": NUMBER,
        "rsize": NUMBER,
        "wsize": NUMBER,
        "actimeo": NUMBER,
        "acregmin": NUMBER,
        "acregmax": NUMBER,
        "acdirmin": NUMBER,
        "acdirmax": NUMBER,
        "nconnect": re.compile(r"[1-9]|1[0-6]"),
        "sec": re.compile(r"sys|krb5|krb5i|krb5p"),
        "lookupcache": re.compile(r"all|none|positive|pos"),
        "local_lock": re.compile(r"none|all|flock|posix"),
        **{flag: None for flag in ("hard", "soft", "noresvport", "resvport", "lock", "nolock", "ac", "noac",
                                   "cto", "nocto", "intr", "nointr", "sharecache", "nosharecache")},
    }  # fmt: skip

    def check_export(self, export: str) -> str:
        match = _EXPORT.fullmatch(export)
        if not match:
            raise InvalidEntry(f"export {export!r} is not host:/path or [IPv6]:/path")
        path = match["path"].rstrip("/") or "/"
        return f"{match['host']}:{path}"

    def check_option(self, option: str) -> None:
        super().check_option(option)
        if option.startswith(("vers=4.0", "nfsvers=4.0")):
            raise InvalidEntry("NFS v4.0 is not supported: use vers=4.1 or 4.2")

    def mount_options(self, fs: Filesystem) -> Tuple[str, ...]:
        given = set(o.split("=", 1)[0] for o in fs.options)
        taken = {a for pair in _EXCLUSIVE for a in pair if given & set(pair)}
        defaults = tuple(d for d in DEFAULTS if d.split("=", 1)[0] not in given | taken)
        if _version(fs.options) == "3":
            proto = next((o.split("=", 1)[1] for o in fs.options if o.startswith("proto=")), "")
            netid = proto if proto in ("tcp", "tcp6") else "tcp6" if fs.export.startswith("[") else "tcp"
            defaults += tuple(f"{key}={netid}" for key in V3_TRANSPORT if key not in given)
        return (fs.access.value, *fs.options, *defaults)

    def same_source(self, export: str, source: str) -> bool:
        # The kernel shows "host:/path" as mounted; a trailing slash may or may not be there.
        host, sep, path = source.rpartition(":")
        return bool(sep) and f"{host}:{path.rstrip('/') or '/'}" == export


def _version(options) -> str:
    """The NFS version an entry asks for ("" when it leaves the choice to mount.nfs)."""
    for option in options:
        key, _, value = option.partition("=")
        if key in ("vers", "nfsvers"):
            return value
    return ""
