"""Pure data of the agent: desired filesystems, observed mounts, fstab lines, actions, plans."""

from __future__ import annotations

import enum
from typing import Mapping, Optional, Tuple

from .records import dataclass, field

__all__ = [
    "Access",
    "Filesystem",
    "Rejection",
    "MountRecord",
    "FstabEntry",
    "OwnedMount",
    "PathState",
    "Observed",
    "ActionKind",
    "Action",
    "State",
    "Verdict",
    "Plan",
]


class Access(str, enum.Enum):
    RW = "rw"
    RO = "ro"


@dataclass(frozen=True)
class Filesystem:
    """One validated filesystem that should be mounted on this instance."""

    name: str  # unique key from the source, e.g. "homeforproject1"
    fs_type: str  # mounter name: "glusterfs", "nfs", …
    export: str  # what to mount, in the mounter's syntax, e.g. "gluster1:/vol"
    mount_point: str  # absolute, normalised, inside an allowed root
    options: Tuple[str, ...] = ()  # validated options, without access/nosuid/nodev
    access: Access = Access.RW
    allow_nonempty: bool = False  # may it hide a non-empty directory?
    # The entry's credential (wire.SECRET), written to the file its mounter names and nowhere
    # else: never shown (repr), never in the ledger, and not part of what makes a remount.
    secret: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Rejection:
    """A desired entry that validation refused; it is reported and never acted on."""

    name: str  # the entry's name, or "#<index>" when it has none usable
    reason: str  # one line a person can act on
    mount_point: Optional[str] = None  # when known and valid, so its mount is not touched


@dataclass(frozen=True)
class MountRecord:
    """One line of /proc/self/mountinfo (proc(5)); every path is unescaped."""

    mount_id: int  # unique id of the mount
    parent_id: int  # id of the parent mount (itself for the root of the tree)
    device: str  # "major:minor" of st_dev
    root: str  # path inside the filesystem that forms the root of this mount
    mount_point: str  # where it is mounted, relative to the process root
    mount_options: str  # per-mount options, e.g. "rw,nosuid,relatime"
    optional_fields: Tuple[str, ...]  # "shared:N", "master:N", … (may be empty)
    fstype: str  # "fuse.glusterfs", "nfs4", …
    source: str  # filesystem-specific source, e.g. "host:/vol"; "" when absent
    super_options: str  # per-superblock options


@dataclass(frozen=True)
class FstabEntry:
    """The six fields of one fstab(5) entry, unescaped."""

    spec: str
    file: str
    vfstype: str
    mntops: str = "defaults"
    freq: int = 0
    passno: int = 0

    @property
    def options(self) -> Tuple[str, ...]:
        return tuple(self.mntops.split(","))


@dataclass(frozen=True)
class OwnedMount:
    """What the agent remembers of a mount point it manages (the ledger in state_dir)."""

    filesystem: Filesystem  # what was (or was being) mounted there
    created_dir: bool = False  # did the agent create the directory (so may remove it)?


class PathState(str, enum.Enum):
    """What stands at a desired mount point that is not mounted yet."""

    MISSING = "missing"
    EMPTY_DIR = "empty directory"
    NONEMPTY_DIR = "non-empty directory"
    NOT_A_DIR = "not a directory"
    SYMLINK = "symbolic link in the path"


@dataclass(frozen=True)
class Observed:
    """Everything plan() knows of the host, gathered by reconcile before planning."""

    mounts: Mapping[str, MountRecord]  # the visible (top) mount at each mount point
    fstab_owned: Mapping[str, FstabEntry]  # our marked lines, by mount point
    fstab_foreign: Mapping[str, FstabEntry]  # every other entry, by mount point
    ledger: Mapping[str, OwnedMount]  # what we mounted, by mount point
    paths: Mapping[str, PathState] = field(default_factory=dict)  # desired but unmounted
    broken: Mapping[str, str] = field(default_factory=dict)  # our mounts failing with ESTALE/ENOTCONN
    hung: Mapping[str, str] = field(default_factory=dict)  # our mounts failing otherwise (no answer…)


class ActionKind(str, enum.Enum):
    UNMOUNT = "unmount"
    MOUNT = "mount"
    WRITE_FSTAB = "write-fstab"  # put our line for this mount point in fstab
    DROP_FSTAB = "drop-fstab"  # remove our line for this mount point
    FORGET = "forget"  # drop the ledger entry (and the directory we created, if empty)


@dataclass(frozen=True)
class Action:
    """One step of a plan, with the reason a person reads in the log."""

    kind: ActionKind
    mount_point: str
    name: str
    reason: str
    fs_type: str = ""  # whose mounter carries it out
    filesystem: Optional[Filesystem] = None  # for MOUNT
    fstab_entry: Optional[FstabEntry] = None  # for WRITE_FSTAB

    def __str__(self) -> str:
        return f"{self.kind.value} {self.mount_point} ({self.name}; {self.reason})"


class State(str, enum.Enum):
    """A filesystem's state as reported to the API and shown by `status`."""

    MOUNTED = "mounted"
    PENDING = "pending"
    UNMOUNTED = "unmounted"
    BUSY = "busy"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    """What the planner concluded for one filesystem before anything ran."""

    name: str
    mount_point: Optional[str]
    state: State
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """Ordered actions plus a verdict per filesystem; empty actions means converged."""

    actions: Tuple[Action, ...] = ()
    verdicts: Tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def converged(self) -> bool:
        return not self.actions
