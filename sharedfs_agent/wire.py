"""The wire contract between sharedfs-api and sharedfs-agent: document keys, patterns, states, mount-point rules.

Both programs import this module (the API imports nothing else of the agent but the mounter
registry), so a fact about the desired-state document is written exactly once. Standard library
only: it runs in every guest. Its functions raise ValueError; each side turns that into its own
error (the agent's InvalidEntry, the API's 400).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any, Iterable

__all__ = [
    "DOCUMENT_KEY",
    "ENTRY_KEYS",
    "SECRET_KEY",
    "SECRET",
    "FS_NAME",
    "ENTRY_NAME",
    "IDENT",
    "OPTION",
    "CONTROL",
    "STATES",
    "SYSTEM_DIRS",
    "MAX_PATH",
    "MAX_ADDRESSES",
    "API_URL",
    "TOKEN",
    "CA_PEM",
    "MAX_CA_BYTES",
    "VENDORDATA_KEYS",
    "VENDORDATA_PROVIDER",
    "check_pattern",
    "check_mount_point",
    "check_address",
]

# The document an agent reads: {"filesystems": [entry, ...]}; each entry has these keys.
DOCUMENT_KEY = "filesystems"
ENTRY_KEYS = ("name", "fs_type", "export", "mount_point", "mount_options", "access", "allow_nonempty",
              "scope", "size", "secret")  # fmt: skip
# The credential of a filesystem reached by identity (CephFS: the instance's own cephx key). Only
# in the document of the instance it belongs to; an agent writes it to a root-only file and passes
# the file's path to the client, so it is never in argv, fstab, a log or the status file.
SECRET_KEY = "secret"
SECRET = re.compile(r"[A-Za-z0-9+/]{16,256}={0,2}")

# A filesystem name the API creates: also a valid GlusterFS volume and CephFS subvolume name.
FS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A name an agent accepts in a document (a file source may use dots and longer names).
ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Projects (tenants) and instance ids.
IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# One mount option: nothing fstab, a shell or mount(8)'s comma list would read as a separator.
OPTION = re.compile(r"[A-Za-z0-9_.:@\[\]/+=-]{1,512}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Where an agent finds the API (http or https; a host, an optional port and path, nothing a
# YAML document or an INI file would read as structure), what a token looks like (the API's
# are secrets.token_urlsafe(32), 43 characters), and a PEM CA bundle.
API_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%-]*)?")
TOKEN = re.compile(r"[A-Za-z0-9_-]{20,200}")
CA_PEM = re.compile(r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+")
MAX_CA_BYTES = 256 * 1024

# Enrollment by Nova's dynamic vendordata: POST /v1.1/vendordata answers these keys, and Nova
# publishes that object in openstack/latest/vendor_data2.json under the provider's name (the NAME
# of nova.conf's vendordata_dynamic_targets = NAME@URL; the docs use this one).
VENDORDATA_KEYS = ("api_url", "token", "project", "instance_id", "ca")
VENDORDATA_PROVIDER = "sharedfs"

# What an agent reports per filesystem; the order is the API's and the agent's (model.State).
STATES = ("mounted", "pending", "unmounted", "busy", "error")

# Never a mount point, nor anything below one: mounting here breaks or hijacks the system.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var", "/tmp", "/snap", "/lost+found",
)  # fmt: skip
_SYSTEM = frozenset(SYSTEM_DIRS)
MAX_PATH = 4096
# Home directories: a hidden directory below one holds a user's credentials (.ssh, .gnupg, .config).
_HOMES = frozenset({"home"})
# Addresses one instance may register: far above any real instance, far below what fills an ACL.
MAX_ADDRESSES = 16


def check_pattern(kind: str, value: Any, pattern: re.Pattern) -> str:
    """value if it is a string matching pattern whole, else ValueError naming kind and pattern."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must match {pattern.pattern}")
    return value


def check_mount_point(path: Any, allowed_roots: Iterable[str]) -> str:
    """An absolute, normalised path inside an allowed root and outside every system directory.

    The API checks form with allowed_roots ("/",); each agent checks again with its own roots.
    """
    if not isinstance(path, str) or not path:
        raise ValueError("mount_point must be a non-empty string")
    if len(path) > MAX_PATH or CONTROL.search(path):
        raise ValueError("mount_point contains control characters or is too long")
    if not path.isprintable():
        # Unicode format and separator characters (a right-to-left override, a zero-width
        # space, U+2028) make a path read differently in a terminal, a log or fstab.
        raise ValueError(f"mount_point {path!r} has a non-printable character")
    if path == "/":
        raise ValueError("mount_point '/' is the root filesystem")
    parts = path.split("/")
    if parts[0]:
        raise ValueError(f"mount_point {path!r} is not absolute")
    if ".." in parts or "." in parts:
        raise ValueError(f"mount_point {path!r} has '.' or '..' segments")
    if "" in parts[1:]:
        raise ValueError(f"mount_point {path!r} is not normalised (did you mean {posixpath.normpath(path)!r}?)")
    # Every system directory is top-level, so its first component decides.
    if "/" + parts[1] in _SYSTEM:
        raise ValueError(f"mount_point {path!r} is inside the system directory /{parts[1]}")
    if parts[1] in _HOMES and any(part.startswith(".") for part in parts[2:]):
        raise ValueError(f"mount_point {path!r} is in a hidden directory of a home directory")
    roots = tuple(allowed_roots)
    if not any(root == "/" or path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
        raise ValueError(
            f"mount_point {path!r} is outside the allowed roots ({' '.join(roots)}; set [agent] allowed_roots)"
        )
    return path


def check_address(text: Any) -> str:
    """A plain unicast IPv4 or IPv6 address in canonical form, else ValueError.

    The address lands in storage access lists (GlusterFS `auth.allow`, NFS client blocks, Manila
    `ip` rules), so nothing but the address itself may pass: no zone (`fe80::1%x,*` would carry
    a separator and a wildcard), no prefix, and no address that names no single machine of a
    cloud (unspecified, loopback, link-local, multicast, broadcast).
    """
    if not isinstance(text, str) or not 2 <= len(text) <= 45 or not re.fullmatch(r"[0-9A-Fa-f.:]+", text):
        raise ValueError(f"address {text!r} is not an IPv4 or IPv6 address")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"address {text!r} is not an IPv4 or IPv6 address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        raise ValueError(f"address {text!r} is an IPv4-mapped IPv6 address: register {ip.ipv4_mapped} instead")
    kinds = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
             ("multicast", ip.is_multicast), ("reserved (or broadcast)", ip.is_reserved))  # fmt: skip
    for kind, bad in kinds:
        if bad:
            raise ValueError(f"address {text!r} is {kind}, not one machine's unicast address")
    return str(ip)
