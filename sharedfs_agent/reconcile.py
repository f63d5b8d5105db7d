"""One reconcile pass: desired (from gather) -> observe -> plan -> apply, each filesystem's failure kept to itself."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from . import actual, fstab, ledger
from .config import AgentConfig
from .desired import Desired
from .errors import BusyError, MountError
from .host import probe as host_probe
from .host import systemd
from .model import Action, ActionKind, Filesystem, Observed, OwnedMount, PathState, Plan, State, Verdict
from .mounters import Mounter, MountSettings
from .plan import plan as make_plan

__all__ = ["Reconciler", "PassResult", "path_state"]

log = logging.getLogger(__name__)

# Probe errors that a fresh mount cures: a stale NFS handle, a FUSE client that died.
REMOUNT_ON = frozenset({"ESTALE", "ENOTCONN"})

Prober = Callable[[Iterable[str], float], Mapping[str, Optional[str]]]


@dataclass(frozen=True)
class PassResult:
    """What one pass decided and how each filesystem ended."""

    plan: Plan
    verdicts: Tuple[Verdict, ...]
    from_cache: bool = False

    @property
    def failed(self) -> bool:
        return any(v.state in (State.ERROR, State.BUSY, State.PENDING) for v in self.verdicts)


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


class Reconciler:
    """Carries out passes for one config; holds no state between passes but what is on disk.
    It takes the desired state as given (gather.py fetches it): it knows no source."""

    def __init__(
        self,
        config: AgentConfig,
        mounters: Mapping[str, Mounter],
        mountinfo: str = actual.MOUNTINFO,
        prober: Prober = host_probe.probe,
    ) -> None:
        self.config = config
        self.mounters = mounters
        self.mountinfo = mountinfo
        self.prober = prober
        use_scope = config.use_systemd_scope
        self.settings = MountSettings(
            config.mount_timeout,
            config.unmount_timeout,
            systemd.booted() if use_scope is None else use_scope,
        )

    # -- observe ----------------------------------------------------------------------------

    def observe(self, desired: Desired) -> Observed:
        mounts = actual.top_mounts(actual.read_mountinfo(self.mountinfo))
        table = fstab.read(self.config.fstab)
        owned_lines = table.owned()
        owned = ledger.load(self.config.ledger_path)
        wanted = {fs.mount_point for fs in desired.filesystems}
        paths = {mp: path_state(mp) for mp in wanted if mp not in mounts}
        ours_mounted = [mp for mp in wanted if mp in mounts and (mp in owned or mp in owned_lines)]
        health = self.prober(ours_mounted, self.config.probe_timeout) if ours_mounted else {}
        return Observed(
            mounts=mounts,
            fstab_owned=owned_lines,
            fstab_foreign=table.foreign_targets(),
            ledger=owned,
            paths=paths,
            broken={mp: why for mp, why in health.items() if why and why.split(":")[0] in REMOUNT_ON},
            hung={mp: why for mp, why in health.items() if why and why.split(":")[0] not in REMOUNT_ON},
        )

    # -- apply ------------------------------------------------------------------------------

    def apply(self, plan: Plan, observed_ledger: Optional[Mapping[str, OwnedMount]] = None) -> Tuple[Verdict, ...]:
        owned: Dict[str, OwnedMount] = dict(
            ledger.load(self.config.ledger_path) if observed_ledger is None else observed_ledger
        )
        table = fstab.read(self.config.fstab)
        lines = table.owned()
        outcome: Dict[str, Tuple[State, str]] = {}
        blocked: List[str] = []  # mount points whose unmount failed: nothing more happens there
        failed_mounts: List[str] = []  # nothing is mounted below these this pass
        try:
            for action in plan.actions:
                mp = action.mount_point
                if mp in blocked:
                    continue
                parent = next((f for f in failed_mounts if mp.startswith(f.rstrip("/") + "/")), None)
                if action.kind is ActionKind.MOUNT and parent:
                    outcome[mp] = (State.ERROR, f"not mounted: the mount of {parent} above it failed")
                    continue
                try:
                    self._do(action, owned, lines, outcome)
                except BusyError as e:
                    log.warning("%s postponed: %s", action, e)
                    blocked.append(mp)
                    outcome[mp] = (State.BUSY, str(e))
                except (MountError, OSError) as e:
                    log.error("%s failed: %s", action, e)
                    if action.kind is ActionKind.UNMOUNT:
                        blocked.append(mp)
                    elif action.kind is ActionKind.MOUNT:
                        failed_mounts.append(mp)
                    outcome[mp] = (State.ERROR, str(e))
        finally:
            # Written once, after the mounts: fstab records desired state, the ledger ownership.
            if fstab.write_atomic(self.config.fstab, table.with_owned(lines)):
                log.info("fstab %s updated", self.config.fstab)
            ledger.save(self.config.ledger_path, owned)
        return tuple(_final(v, outcome) for v in plan.verdicts)

    def _do(self, action: Action, owned: Dict[str, OwnedMount], lines: Dict, outcome: Dict) -> None:
        mp = action.mount_point
        if action.kind is ActionKind.UNMOUNT:
            self._mounter(action.fs_type).unmount(mp, self.settings)
            log.info("unmounted %s (%s) because: %s", mp, action.name, action.reason)
            outcome[mp] = (State.UNMOUNTED, "")
        elif action.kind is ActionKind.MOUNT:
            self._mount(action.filesystem, owned)
            log.info("mounted %s on %s (%s) because: %s", action.filesystem.export, mp, action.name, action.reason)
            outcome[mp] = (State.MOUNTED, "")
        elif action.kind is ActionKind.WRITE_FSTAB:
            lines[mp] = action.fstab_entry
            log.info("fstab line for %s (%s) written because: %s", mp, action.name, action.reason)
            outcome.setdefault(mp, (State.MOUNTED, ""))
        elif action.kind is ActionKind.DROP_FSTAB:
            lines.pop(mp, None)
            log.info("fstab line for %s (%s) removed because: %s", mp, action.name, action.reason)
            outcome.setdefault(mp, (State.UNMOUNTED, ""))
        elif action.kind is ActionKind.FORGET:
            gone = owned.pop(mp, None)
            if gone is not None and gone.created_dir:
                self._remove_dir(mp)
            outcome.setdefault(mp, (State.UNMOUNTED, ""))

    def _mounter(self, fs_type: str) -> Mounter:
        # An fs_type no mounter claims any more (plugin removed) is still unmounted generically.
        return self.mounters.get(fs_type) or Mounter()

    def _mount(self, fs: Filesystem, owned: Dict[str, OwnedMount]) -> None:
        mp = fs.mount_point
        created = owned[mp].created_dir if mp in owned else False
        if not os.path.isdir(mp):
            os.makedirs(os.path.dirname(mp), mode=0o755, exist_ok=True)
            os.mkdir(mp, self.config.mount_point_mode)
            os.chmod(mp, self.config.mount_point_mode)  # not narrowed by the umask
            os.chown(mp, self.config.mount_point_uid, self.config.mount_point_gid)
            created = True
        # Recorded before mounting: a crash between the two must not leave a mount we disown.
        owned[mp] = OwnedMount(fs, created)
        ledger.save(self.config.ledger_path, owned)
        mounter = self.mounters[fs.fs_type]
        mounter.mount(fs, self.settings)
        self._verify(fs, mounter)

    def _verify(self, fs: Filesystem, mounter: Mounter) -> None:
        """mount(8) exiting 0 is not proof: mount.glusterfs does so when the server refused
        the client. Check mountinfo, then read through the mount in a bounded child."""
        record = actual.top_mounts(actual.read_mountinfo(self.mountinfo)).get(fs.mount_point)
        if record is None or not mounter.is_mount_of(fs.export, record):
            raise MountError(f"mount reported success but {fs.mount_point} is not in mountinfo")
        problem = self.prober([fs.mount_point], self.config.probe_timeout).get(fs.mount_point)
        if problem:
            try:
                mounter.unmount(fs.mount_point, self.settings)
            except MountError as e:
                log.warning("could not undo unusable mount %s: %s", fs.mount_point, e)
            raise MountError(f"mounted but unusable ({problem}); unmounted again")

    @staticmethod
    def _remove_dir(path: str) -> None:
        try:
            os.rmdir(path)  # only ever empties: rmdir refuses a directory with anything in it
        except OSError as e:
            log.info("left directory %s in place: %s", path, e.strerror)

    # -- one pass ---------------------------------------------------------------------------

    def release_all(self) -> PassResult:
        """Unmount everything we own and drop all our fstab lines (for an uninstall)."""
        return self._reconcile(Desired((), ()), fresh=True)

    def run_pass(self, desired: Desired, fresh: bool, dry_run: bool = False) -> PassResult:
        """fresh: the desired state was answered now by every source, so unmounting is allowed."""
        return self._reconcile(desired, fresh, dry_run)

    def _reconcile(self, desired: Desired, fresh: bool, dry_run: bool = False) -> PassResult:
        """Observe, plan, and apply unless dry_run or already converged."""
        observed = self.observe(desired)
        the_plan = make_plan(
            desired, observed, self.mounters, may_unmount=fresh, mount_timeout=self.config.mount_timeout
        )
        if dry_run or the_plan.converged:
            return PassResult(the_plan, the_plan.verdicts, not fresh)
        return PassResult(the_plan, self.apply(the_plan, observed.ledger), not fresh)


def _final(verdict: Verdict, outcome: Mapping[str, Tuple[State, str]]) -> Verdict:
    """A planned verdict updated with what applying it did."""
    if verdict.state is not State.PENDING or verdict.mount_point not in outcome:
        return verdict
    state, detail = outcome[verdict.mount_point]
    return Verdict(verdict.name, verdict.mount_point, state, detail)
