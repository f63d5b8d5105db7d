"""One reconcile pass: desired (from gather) -> observe -> plan -> apply, each filesystem's failure kept to itself."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from . import fstab, ledger
from .config import AgentConfig
from .desired import SECRET_PREFIX, SECRET_SUFFIX, Desired
from .errors import ClientMissing, MountError, outcome
from .host import systemd
from .host.mount import Host, MountSettings
from .logs import fields
from .model import Action, ActionKind, Filesystem, Observed, OwnedMount, Plan, State, Verdict
from .mounters import Mounter
from .plan import depth_order
from .plan import plan as make_plan
from .records import dataclass

__all__ = ["Reconciler", "PassResult"]

log = logging.getLogger(__name__)

# Mounts (or unmounts) of one depth level run this many at once, so N hung servers cost one
# mount_timeout per pass, not N; bounded because each is a helper process (and a FUSE daemon).
PARALLEL = 8


@dataclass(frozen=True)
class PassResult:
    """What one pass decided and how each filesystem ended."""

    plan: Plan
    verdicts: Tuple[Verdict, ...]
    from_cache: bool = False

    @property
    def failed(self) -> bool:
        return any(v.state in (State.ERROR, State.BUSY, State.PENDING) for v in self.verdicts)


class Reconciler:
    """Carries out passes for one config; holds no state between passes but what is on disk.
    It takes the desired state as given (gather.py fetches it): it knows no source."""

    def __init__(
        self,
        config: AgentConfig,
        mounters: Mapping[str, Mounter],
        host: Optional[Host] = None,
    ) -> None:
        self.config = config
        self.mounters = mounters
        self.host = Host() if host is None else host  # every side effect goes through it
        self.ledger_lock = threading.Lock()  # parallel mounts each record themselves first
        use_scope = config.use_systemd_scope
        self.settings = MountSettings(
            config.mount_timeout,
            config.unmount_timeout,
            systemd.booted() if use_scope is None else use_scope,
        )

    # -- observe ----------------------------------------------------------------------------

    def observe(self, desired: Desired) -> Observed:
        mounts = self.host.mounts()
        table = fstab.read(self.config.fstab)
        owned_lines = table.owned()
        owned = ledger.load(self.config.ledger_path)
        wanted = {fs.mount_point: fs.fs_type for fs in desired.filesystems}
        paths = {mp: self.host.path_state(mp) for mp in wanted if mp not in mounts}
        ours_mounted = [mp for mp in wanted if mp in mounts and (mp in owned or mp in owned_lines)]
        health = self.host.probe(ours_mounted, self.config.probe_timeout) if ours_mounted else {}
        # The mounter's health rule: which probe errors a fresh mount cures, the rest are "hung".
        cured = {mp: why.split(":")[0] in self._mounter(wanted[mp]).remount_on for mp, why in health.items() if why}
        return Observed(
            mounts=mounts,
            fstab_owned=owned_lines,
            fstab_foreign=table.foreign_targets(),
            ledger=owned,
            paths=paths,
            broken={mp: why for mp, why in health.items() if why and cured[mp]},
            hung={mp: why for mp, why in health.items() if why and not cured[mp]},
        )

    # -- apply ------------------------------------------------------------------------------

    def apply(self, plan: Plan, observed_ledger: Optional[Mapping[str, OwnedMount]] = None) -> Tuple[Verdict, ...]:
        owned: Dict[str, OwnedMount] = dict(
            ledger.load(self.config.ledger_path) if observed_ledger is None else observed_ledger
        )
        table = fstab.read(self.config.fstab)
        lines = table.owned()
        done: Dict[str, Tuple[State, str]] = {}  # mount point -> how applying ended there
        blocked: List[str] = []  # mount points whose unmount failed: nothing more happens there
        failed_mounts: List[str] = []  # nothing is mounted below these this pass
        try:
            for batch in _batches(plan.actions):
                runnable = []
                for action in batch:
                    mp = action.mount_point
                    if mp in blocked:
                        continue
                    parent = next((f for f in failed_mounts if mp.startswith(f.rstrip("/") + "/")), None)
                    if action.kind is ActionKind.MOUNT and parent:
                        done[mp] = (State.ERROR, f"not mounted: the mount of {parent} above it failed")
                        continue
                    runnable.append(action)
                # One level's mounts (or unmounts) are never parent and child: they may overlap.
                if len(runnable) > 1:
                    with ThreadPoolExecutor(min(PARALLEL, len(runnable)), thread_name_prefix="apply") as pool:
                        errors = list(pool.map(lambda a: self._attempt(a, owned, lines, done), runnable))
                else:
                    errors = [self._attempt(a, owned, lines, done) for a in runnable]
                for action, error in zip(runnable, errors):
                    if error is None:
                        continue
                    mp = action.mount_point
                    result = outcome(error)
                    about = fields(action.name, mp, action.kind.value, result.state.value)
                    if result.state is State.BUSY:
                        log.warning("%s postponed: %s", action, result.detail, extra=about)
                    else:
                        log.error("%s failed%s: %s", action, "" if result.retry else " (needs a person)", result.detail,
                                  extra=about)  # fmt: skip
                    if action.kind is ActionKind.UNMOUNT:
                        blocked.append(mp)
                    elif action.kind is ActionKind.MOUNT:
                        failed_mounts.append(mp)
                    done[mp] = (result.state, result.detail)
        finally:
            # Written once, after the mounts: fstab records desired state, the ledger ownership.
            if fstab.write_atomic(self.config.fstab, table.with_owned(lines)):
                log.info("fstab %s updated", self.config.fstab)
            ledger.save(self.config.ledger_path, owned)
        return tuple(_final(v, done) for v in plan.verdicts)

    def _attempt(self, action: Action, owned: Dict[str, OwnedMount], lines: Dict, done: Dict) -> Optional[Exception]:
        """The action carried out; its error returned (a failure stays this filesystem's), not raised."""
        try:
            self._do(action, owned, lines, done)
        except (MountError, OSError) as e:
            return e
        return None

    def _do(self, action: Action, owned: Dict[str, OwnedMount], lines: Dict, done: Dict) -> None:
        mp = action.mount_point
        if action.kind is ActionKind.UNMOUNT:
            self.host.unmount(self._mounter(action.fs_type).unmount_argv(mp), self.settings)
            log.info("unmounted %s (%s) because: %s", mp, action.name, action.reason,
                     extra=fields(action.name, mp, action.kind.value, State.UNMOUNTED.value))  # fmt: skip
            done[mp] = (State.UNMOUNTED, "")
        elif action.kind is ActionKind.MOUNT:
            self._mount(action.filesystem, owned)
            log.info("mounted %s on %s (%s) because: %s", action.filesystem.export, mp, action.name, action.reason,
                     extra=fields(action.name, mp, action.kind.value, State.MOUNTED.value))  # fmt: skip
            done[mp] = (State.MOUNTED, "")
        elif action.kind is ActionKind.WRITE_FSTAB:
            lines[mp] = action.fstab_entry
            log.info("fstab line for %s (%s) written because: %s", mp, action.name, action.reason,
                     extra=fields(action.name, mp, action.kind.value))  # fmt: skip
            done.setdefault(mp, (State.MOUNTED, ""))
        elif action.kind is ActionKind.DROP_FSTAB:
            lines.pop(mp, None)
            log.info("fstab line for %s (%s) removed because: %s", mp, action.name, action.reason,
                     extra=fields(action.name, mp, action.kind.value))  # fmt: skip
            done.setdefault(mp, (State.UNMOUNTED, ""))
        elif action.kind is ActionKind.FORGET:
            gone = owned.pop(mp, None)
            if gone is not None and gone.created_dir:
                self._remove_dir(mp)
            done.setdefault(mp, (State.UNMOUNTED, ""))

    def _mounter(self, fs_type: str) -> Mounter:
        # An fs_type no mounter claims any more (plugin removed) is still unmounted generically.
        return self.mounters.get(fs_type) or Mounter()

    def _mount(self, fs: Filesystem, owned: Dict[str, OwnedMount]) -> None:
        mp = fs.mount_point
        config = self.config
        made = self.host.make_dir(mp, config.mount_point_mode, config.mount_point_uid, config.mount_point_gid)
        created = made or (owned[mp].created_dir if mp in owned else False)
        # Recorded before mounting: a crash between the two must not leave a mount we disown.
        with self.ledger_lock:
            owned[mp] = OwnedMount(fs, created)
            ledger.save(config.ledger_path, owned)
        mounter = self.mounters[fs.fs_type]
        if not self.host.client_installed(mounter.helper, mounter.kernel_fstypes, mounter.kernel_module):
            raise ClientMissing(mounter.client_hint())
        secret_file = mounter.secret_file(fs)
        if secret_file:
            self.host.write_secret(secret_file, fs.secret)  # the mount names the file, never the key
        # The mounter decides; a FUSE client must outlive the agent, so it gets its own scope.
        scope = f"sharedfs mount of {fs.name} on {mp}" if mounter.fuse else None
        self.host.mount(mounter.mount_argv(fs), self.settings, scope)
        self._verify(fs, mounter)

    def _verify(self, fs: Filesystem, mounter: Mounter) -> None:
        """mount(8) exiting 0 is not proof: mount.glusterfs does so when the server refused
        the client. Check mountinfo, then read through the mount in a bounded child."""
        record = self.host.mounts().get(fs.mount_point)
        if record is None or not mounter.is_mount_of(fs.export, record):
            raise MountError(f"mount reported success but {fs.mount_point} is not in mountinfo")
        problem = self.host.probe([fs.mount_point], self.config.probe_timeout).get(fs.mount_point)
        if problem:
            try:
                self.host.unmount(mounter.unmount_argv(fs.mount_point), self.settings)
            except MountError as e:
                log.warning("could not undo unusable mount %s: %s", fs.mount_point, e)
            raise MountError(f"mounted but unusable ({problem}); unmounted again")

    def _remove_dir(self, path: str) -> None:
        why = self.host.remove_dir(path)  # only ever empties: never removes what is inside
        if why:
            log.info("left directory %s in place: %s", path, why)

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
        if dry_run:
            return PassResult(the_plan, the_plan.verdicts, not fresh)
        verdicts = the_plan.verdicts if the_plan.converged else self.apply(the_plan, observed.ledger)
        self._keep_secrets(desired)
        return PassResult(the_plan, verdicts, not fresh)

    def _keep_secrets(self, desired: Desired) -> None:
        """Each desired entry's secret file equal to its secret (a rotated key reaches the file a
        boot mounts with); every other file of ours removed: a filesystem gone, its key goes too."""
        wanted: Dict[str, str] = {}
        for fs in desired.filesystems:
            mounter = self.mounters.get(fs.fs_type)
            path = mounter.secret_file(fs) if mounter else ""
            if path:
                wanted[path] = fs.secret
        for path in self.host.secret_files(self.config.secret_dir, f"{SECRET_PREFIX}*{SECRET_SUFFIX}"):
            if path not in wanted:
                try:
                    self.host.remove_file(path)
                except OSError as e:
                    log.warning("could not remove the secret file %s: %s", path, e.strerror)
                else:
                    log.info("removed the secret file %s: no filesystem wants it", path)
        for path, secret in wanted.items():
            try:
                self.host.write_secret(path, secret)
            except OSError as e:
                log.warning("could not write the secret file %s: %s", path, e.strerror)


def _batches(actions) -> Iterator[List[Action]]:
    """The plan's actions (already in order: plan._ordered) cut into runs that may overlap: the
    consecutive mounts, or unmounts, of one depth level. Anything else is a run of its own."""
    batch: List[Action] = []
    for action in actions:
        parallel = action.kind in (ActionKind.MOUNT, ActionKind.UNMOUNT)
        level = (action.kind, depth_order(action.mount_point)[0])
        if batch and parallel and level == (batch[0].kind, depth_order(batch[0].mount_point)[0]):
            batch.append(action)
            continue
        if batch:
            yield batch
        batch = [action]
        if not parallel:
            yield batch
            batch = []
    if batch:
        yield batch


def _final(verdict: Verdict, done: Mapping[str, Tuple[State, str]]) -> Verdict:
    """A planned verdict updated with what applying it did."""
    if verdict.state is not State.PENDING or verdict.mount_point not in done:
        return verdict
    state, detail = done[verdict.mount_point]
    return Verdict(verdict.name, verdict.mount_point, state, detail)
