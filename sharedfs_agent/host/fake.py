"""FakeHost: the one fake of the host boundary, an in-memory mount table and an action log (for tests)."""

from __future__ import annotations

import fnmatch
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..errors import MountError
from ..model import MountRecord, PathState
from .mount import MountSettings

__all__ = ["FakeHost"]

# What mountinfo shows for `mount -t X` where that differs from X (FUSE clients name themselves).
KERNEL_TYPES = {"glusterfs": "fuse.glusterfs", "fuse.ceph": "fuse.ceph-fuse"}


class FakeHost:
    """Host's methods over dicts, like k8s mount-utils' fake_mounter.go: mounting adds a record
    to `table`, every action is appended to `log` as (verb, path), and a test makes an action
    fail by putting the error in `failures[(verb, path)]`. Assert outcomes, not call sequences.

    mount() reads argv in mount(8)'s form `… -t TYPE [-o OPTS] SOURCE TARGET`, the form every
    built-in mounter's mount_argv has.
    """

    def __init__(self, kernel_types: Mapping[str, str] = KERNEL_TYPES) -> None:
        self.kernel_types = dict(kernel_types)
        self.table: Dict[str, MountRecord] = {"/": _record("/", "ext4", "/dev/vda", 1)}
        self.dirs: Dict[str, Tuple[int, int, int]] = {}  # made by make_dir: path -> (mode, uid, gid)
        self.paths: Dict[str, PathState] = {}  # what a test put at a path (default: missing)
        self.health: Dict[str, str] = {}  # mount point -> probe reason ("ESTALE: …"); absent is healthy
        self.missing_clients: Set[str] = set()  # helpers (or kernel types) that are not installed
        self.failures: Dict[Tuple[str, str], MountError] = {}
        self.log: List[Tuple[str, str]] = []
        # Called with (verb, path) as each action starts: to check what was on disk by then.
        self.before: Optional[Callable[[str, str], None]] = None
        self.argv: Dict[str, Sequence[str]] = {}  # the last mount argv per target
        self.scoped: Set[str] = set()  # targets whose last mount ran in its own scope
        self.files: Dict[str, str] = {}  # secret files written: path -> content

    def actions(self, verb: str) -> List[str]:
        """The paths of every logged action of one kind, in order."""
        return [path for kind, path in self.log if kind == verb]

    def _act(self, verb: str, path: str) -> None:
        if self.before is not None:
            self.before(verb, path)
        self.log.append((verb, path))
        error = self.failures.get((verb, path))
        if error is not None:
            raise error

    def mounts(self) -> Dict[str, MountRecord]:
        return dict(self.table)

    def mount(self, argv: Sequence[str], settings: MountSettings, own_scope: Optional[str] = None) -> None:
        target, source = argv[-1], argv[-2]
        self._act("mount", target)
        fstype = argv[argv.index("-t") + 1]
        self.argv[target] = list(argv)
        if own_scope and settings.use_scope:
            self.scoped.add(target)
        self.table[target] = _record(target, self.kernel_types.get(fstype, fstype), source, 100 + len(self.log))

    def unmount(self, argv: Sequence[str], settings: MountSettings) -> None:
        self._act("unmount", argv[-1])
        self.table.pop(argv[-1], None)

    def probe(self, paths: Iterable[str], timeout: float) -> Mapping[str, Optional[str]]:
        return {path: self.health.get(path) for path in paths}

    def path_state(self, path: str) -> PathState:
        if path in self.dirs:
            return PathState.EMPTY_DIR
        return self.paths.get(path, PathState.MISSING)

    def make_dir(self, path: str, mode: int, uid: int, gid: int) -> bool:
        if path in self.dirs or self.paths.get(path) in (PathState.EMPTY_DIR, PathState.NONEMPTY_DIR):
            return False
        self._act("make_dir", path)
        self.dirs[path] = (mode, uid, gid)
        return True

    def remove_dir(self, path: str) -> Optional[str]:
        self._act("remove_dir", path)
        if path in self.table:
            return "Device or resource busy"
        self.dirs.pop(path, None)
        return None

    def write_secret(self, path: str, secret: str) -> None:
        if self.files.get(path) != secret + "\n":
            self._act("write_secret", path)
            self.files[path] = secret + "\n"

    def secret_files(self, directory: str, pattern: str) -> List[str]:
        return sorted(p for p in self.files if fnmatch.fnmatch(p, f"{directory}/{pattern}"))

    def remove_file(self, path: str) -> None:
        self._act("remove_file", path)
        self.files.pop(path, None)

    def client_installed(self, helper: str, kernel_types: Iterable[str], kernel_module: str = "") -> bool:
        return not ({helper, *kernel_types} & self.missing_clients)


def _record(mount_point: str, fstype: str, source: str, mount_id: int) -> MountRecord:
    return MountRecord(mount_id, 1, "0:99", "/", mount_point, "rw", (), fstype, source, "rw")
