"""The wire contract between sharedfs-api and sharedfs-agent: document keys, patterns, states, mount-point rules.

Both programs import this module (the API imports nothing else of the agent but the mounter
registry), so a fact about the desired-state document is written exactly once. Standard library
only: it runs in every guest. Its functions raise ValueError; each side turns that into its own
error (the agent's InvalidEntry, the API's 400).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Iterable

__all__ = [
    "DOCUMENT_KEY",
    "ENTRY_KEYS",
    "FS_NAME",
    "ENTRY_NAME",
    "IDENT",
    "OPTION",
    "CONTROL",
    "STATES",
    "SYSTEM_DIRS",
    "MAX_PATH",
    "check_pattern",
    "check_mount_point",
]

# The document an agent reads: {"filesystems": [entry, ...]}; each entry has these keys.
DOCUMENT_KEY = "filesystems"
ENTRY_KEYS = ("name", "fs_type", "export", "mount_point", "mount_options", "access", "allow_nonempty",
              "scope", "size")  # fmt: skip

# A filesystem name the API creates: also a valid GlusterFS volume and CephFS subvolume name.
FS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A name an agent accepts in a document (a file source may use dots and longer names).
ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Projects (tenants) and instance ids.
IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# One mount option: nothing fstab, a shell or mount(8)'s comma list would read as a separator.
OPTION = re.compile(r"[A-Za-z0-9_.:@\[\]/+=-]{1,512}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# What an agent reports per filesystem; the order is the API's and the agent's (model.State).
STATES = ("mounted", "pending", "unmounted", "busy", "error")

# Never a mount point, nor anything below one: mounting here breaks or hijacks the system.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var", "/tmp", "/snap", "/lost+found",
)  # fmt: skip
_SYSTEM = frozenset(SYSTEM_DIRS)
MAX_PATH = 4096


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
    roots = tuple(allowed_roots)
    if not any(root == "/" or path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
        raise ValueError(
            f"mount_point {path!r} is outside the allowed roots ({' '.join(roots)}; set [agent] allowed_roots)"
        )
    return path
