"""The reconciler's hands: mount and unmount by argv, the mount table, probes, mount-point directories."""

from __future__ import annotations

import glob
import logging
import os
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from .. import actual, atomicfile
from ..errors import BusyError, MountError, TemporaryMountError
from ..model import MountRecord, PathState
from . import commands, probe, systemd

__all__ = ["Host", "MountSettings", "Prober", "path_state"]

log = logging.getLogger(__name__)

Prober = Callable[[Iterable[str], float], Mapping[str, Optional[str]]]

# Where mount(8) looks for a helper, before $PATH: a root service's PATH may lack the sbin dirs.
_HELPER_DIRS = ("/sbin", "/usr/sbin", "/bin", "/usr/bin")


class MountSettings:
    """The config values a mount needs; a plain holder so host/ does not import config."""

    def __init__(self, mount_timeout: float, unmount_timeout: float, use_scope: bool) -> None:
        self.mount_timeout = mount_timeout
        self.unmount_timeout = unmount_timeout
        self.use_scope = use_scope


def path_state(path: str) -> PathState:
    """What stands at a mount point that is not mounted (never follows a symlink into it)."""
    if os.path.realpath(path) != path:
        return PathState.SYMLINK
    try:
        with os.scandir(path) as entries:
            return PathState.NONEMPTY_DIR if next(entries, None) is not None else PathState.EMPTY_DIR
    except FileNotFoundError:
        return PathState.MISSING
    except NotADirectoryError:
        return PathState.NOT_A_DIR


class Host:
    """Every side effect a pass has on mounts and mount points. Mounters decide the argv; this
    runs it. Its one fake, with the same methods, is host/fake.py's FakeHost."""

    def __init__(self, mountinfo: str = actual.MOUNTINFO, prober: Prober = probe.probe) -> None:
        self.mountinfo = mountinfo
        self.prober = prober

    def mounts(self) -> Dict[str, MountRecord]:
        """Mount point -> the mount on top there, from mountinfo."""
        return actual.top_mounts(actual.read_mountinfo(self.mountinfo))

    def mount(self, argv: Sequence[str], settings: MountSettings, own_scope: Optional[str] = None) -> None:
        """Run a mount helper; raises TemporaryMountError (or TimeoutExpired) when it fails.

        own_scope, when given, describes the transient systemd scope the helper runs in: a FUSE
        client must outlive the agent (docs/design.md, invariant 8). Without systemd it runs in the agent's cgroup.
        """
        if own_scope and settings.use_scope:
            argv = systemd.in_own_scope(argv, own_scope)
        result = commands.run(argv, settings.mount_timeout)
        if not result.ok:
            raise TemporaryMountError(f"mount failed: {result.summary()}")

    def unmount(self, argv: Sequence[str], settings: MountSettings) -> None:
        """Run an unmount helper; a filesystem in use raises BusyError and stays mounted."""
        result = commands.run(argv, settings.unmount_timeout)
        if result.ok:
            return
        if "busy" in result.summary().lower():
            raise BusyError(f"in use, not unmounted: {result.summary()}")
        raise MountError(f"umount failed: {result.summary()}")

    def probe(self, paths: Iterable[str], timeout: float) -> Mapping[str, Optional[str]]:
        """Path -> None when healthy, else a reason ("ESTALE: …"); never hangs past timeout."""
        return self.prober(paths, timeout)

    def path_state(self, path: str) -> PathState:
        return path_state(path)

    def make_dir(self, path: str, mode: int, uid: int, gid: int) -> bool:
        """Make the mount point (and its parents) unless a directory is there; True when made."""
        if os.path.isdir(path):
            return False
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.mkdir(path, mode)
        os.chmod(path, mode)  # not narrowed by the umask
        os.chown(path, uid, gid)
        return True

    def remove_dir(self, path: str) -> Optional[str]:
        """Remove an empty directory; None when removed, else why it was left."""
        try:
            os.rmdir(path)  # only ever empties: rmdir refuses a directory with anything in it
        except OSError as e:
            return e.strerror
        return None

    def write_secret(self, path: str, secret: str) -> None:
        """A secret in a root-only file (0600, replaced atomically, untouched when already equal),
        its directory made if missing (0755, as ceph-common makes /etc/ceph)."""
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        atomicfile.replace_if_changed(path, secret.encode() + b"\n", mode=0o600)

    def secret_files(self, directory: str, pattern: str) -> List[str]:
        """The files in directory matching a glob pattern (the agent's own secret files)."""
        return sorted(glob.glob(os.path.join(glob.escape(directory), pattern)))

    def remove_file(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def client_installed(self, helper: str, kernel_types: Iterable[str], kernel_module: str = "") -> bool:
        """Is the client there: the helper executable, or with no helper the kernel knowing one of
        the types now or having the module (kernel_module, below kernel/fs/) to load."""
        if helper:
            if any(os.access(os.path.join(d, helper), os.X_OK) for d in _HELPER_DIRS):
                return True
            import shutil  # rarely reached: helpers live in _HELPER_DIRS; shutil costs an idle daemon

            return bool(shutil.which(helper))
        wanted = set(kernel_types)
        try:
            with open("/proc/filesystems") as f:
                if any(line.split()[-1] in wanted for line in f if line.strip()):
                    return True
        except OSError:
            pass
        return bool(kernel_module) and bool(
            glob.glob(f"/lib/modules/{os.uname().release}/kernel/fs/{kernel_module}.ko*")
        )
