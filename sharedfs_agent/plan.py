"""plan(desired, observed) -> Plan: the pure heart where every reconcile rule lives (no I/O)."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Set

from .desired import Desired
from .model import (
    Action,
    ActionKind,
    Filesystem,
    FstabEntry,
    MountRecord,
    Observed,
    PathState,
    Plan,
    State,
    Verdict,
)
from .mounters import Mounter

__all__ = ["plan", "depth_order"]


def depth_order(mount_point: str):
    """Sort key putting a parent before anything mounted below it."""
    return (mount_point.count("/"), mount_point)


def _mount_spec(fs: Filesystem):
    """What a mount is made of: a change here needs unmount + mount (remount cannot switch servers)."""
    return (fs.fs_type, fs.export, fs.options, fs.access)


class _Planner:
    """Holds one planning call's inputs so the rules read as short methods."""

    def __init__(
        self,
        desired: Desired,
        observed: Observed,
        mounters: Mapping[str, Mounter],
        may_unmount: bool,
        mount_timeout: float,
    ) -> None:
        self.desired = desired
        self.observed = observed
        self.mounters = mounters
        # Our fstab lines carry the type given to mount(8) ("ceph", "fuse.ceph"), not always the
        # mounter's name: trace a line back by either (its ledger entry may be gone).
        self.by_line_type = {m.type_for_mount: m for m in mounters.values()}
        self.may_unmount = may_unmount
        self.mount_timeout = mount_timeout
        self.actions: List[Action] = []
        self.verdicts: List[Verdict] = []

    def ours(self, mount_point: str, record: Optional[MountRecord]) -> bool:
        """Is the visible mount at mount_point one we made? By our ledger, or by our fstab
        line (a boot mounted it from the line before the agent ran)."""
        if record is None:
            return False
        owned = self.observed.ledger.get(mount_point)
        if owned and self._is_mount_of(owned.filesystem.fs_type, owned.filesystem.export, record):
            return True
        line = self.observed.fstab_owned.get(mount_point)
        return bool(line and self._is_mount_of(self.line_fs_type(line), line.spec, record))

    def line_fs_type(self, line: FstabEntry) -> str:
        """The mounter name behind one of our fstab lines."""
        mounter = self.mounters.get(line.vfstype) or self.by_line_type.get(line.vfstype)
        return mounter.fs_type if mounter else line.vfstype

    def _is_mount_of(self, fs_type: str, export: str, record: MountRecord) -> bool:
        mounter = self.mounters.get(fs_type)
        return mounter is not None and mounter.is_mount_of(export, record)

    def act(self, kind: ActionKind, mount_point: str, name: str, fs_type: str, reason: str, **extra) -> None:
        self.actions.append(Action(kind, mount_point, name, reason, fs_type, **extra))

    def refuse(self, fs: Filesystem, detail: str) -> None:
        self.verdicts.append(Verdict(fs.name, fs.mount_point, State.ERROR, detail))

    def want(self, fs: Filesystem) -> None:
        """Rules for one desired filesystem."""
        obs, mp = self.observed, fs.mount_point
        mounter = self.mounters[fs.fs_type]
        foreign_line = obs.fstab_foreign.get(mp)
        if foreign_line is not None:
            return self.refuse(
                fs,
                f"conflict: an fstab line we did not write uses {mp} "
                f"({foreign_line.spec} {foreign_line.vfstype}); not taking it over",
            )
        record = obs.mounts.get(mp)
        before = len(self.actions)
        if record is not None and not self.ours(mp, record):
            return self.refuse(
                fs,
                f"conflict: {mp} holds a mount we did not make "
                f"({record.fstype} {record.source or '-'}); not touching it",
            )
        if record is not None:
            owned = obs.ledger.get(mp)
            reason = None
            if not mounter.is_mount_of(fs.export, record):
                reason = f"export changed from {record.source} ({record.fstype}) to {fs.export} ({fs.fs_type})"
            elif owned is not None and _mount_spec(owned.filesystem) != _mount_spec(fs):
                reason = f"options changed to {','.join(mounter.mount_options(fs))}"
            elif mp in obs.broken:
                reason = f"mount is broken ({obs.broken[mp]})"
            if reason:
                old_type = owned.filesystem.fs_type if owned else fs.fs_type
                self.act(ActionKind.UNMOUNT, mp, fs.name, old_type, reason)
                self.act(ActionKind.MOUNT, mp, fs.name, fs.fs_type, f"remount: {reason}", filesystem=fs)
        else:
            path = obs.paths.get(mp, PathState.MISSING)
            if path in (PathState.SYMLINK, PathState.NOT_A_DIR):
                return self.refuse(fs, f"refused: {mp} is a {path.value}; not mounting through it")
            if path is PathState.NONEMPTY_DIR and not fs.allow_nonempty:
                return self.refuse(
                    fs,
                    f"refused: {mp} is a non-empty directory and a mount would hide its "
                    "files (set allow_nonempty for this filesystem or [agent] allow_nonempty)",
                )
            self.act(ActionKind.MOUNT, mp, fs.name, fs.fs_type, "not mounted", filesystem=fs)
        line = mounter.fstab_entry(fs, self.mount_timeout)
        current = obs.fstab_owned.get(mp)
        if current != line:
            self.act(
                ActionKind.WRITE_FSTAB,
                mp,
                fs.name,
                fs.fs_type,
                "fstab line missing" if current is None else "fstab line out of date",
                fstab_entry=line,
            )
        if len(self.actions) > before:
            self.verdicts.append(Verdict(fs.name, mp, State.PENDING))
        elif mp in obs.hung:
            # Remounting cannot cure a server that does not answer, and its unmount could hang too.
            self.verdicts.append(
                Verdict(fs.name, mp, State.ERROR, f"mounted, but a read through it failed: {obs.hung[mp]}")
            )
        else:
            self.verdicts.append(Verdict(fs.name, mp, State.MOUNTED))

    def release(self, mount_point: str) -> None:
        """Rules for a mount point we own that is no longer desired."""
        obs = self.observed
        owned = obs.ledger.get(mount_point)
        line = obs.fstab_owned.get(mount_point)
        name = owned.filesystem.name if owned else "-"
        fs_type = owned.filesystem.fs_type if owned else (self.line_fs_type(line) if line else "")
        record = obs.mounts.get(mount_point)
        if self.ours(mount_point, record):
            self.act(ActionKind.UNMOUNT, mount_point, name, fs_type, "no longer attached")
        if line is not None:
            self.act(ActionKind.DROP_FSTAB, mount_point, name, fs_type, "no longer attached")
        if owned is not None:
            self.act(ActionKind.FORGET, mount_point, name, fs_type, "no longer attached")
        self.verdicts.append(Verdict(name, mount_point, State.PENDING, "unmounting"))

    def run(self) -> Plan:
        for rejection in self.desired.rejections:
            self.verdicts.append(
                Verdict(rejection.name, rejection.mount_point, State.ERROR, f"refused: {rejection.reason}")
            )
        for fs in self.desired.filesystems:
            self.want(fs)
        if self.may_unmount:
            # A refused entry keeps whatever it had: a bad update is not a detach.
            kept: Set[str] = {fs.mount_point for fs in self.desired.filesystems}
            kept |= {r.mount_point for r in self.desired.rejections if r.mount_point}
            refused_names = {r.name for r in self.desired.rejections}
            for mp in set(self.observed.ledger) | set(self.observed.fstab_owned):
                owned = self.observed.ledger.get(mp)
                if mp not in kept and not (owned and owned.filesystem.name in refused_names):
                    self.release(mp)
        return Plan(tuple(_ordered(self.actions)), tuple(self.verdicts))


_PHASE: Dict[ActionKind, int] = {
    ActionKind.UNMOUNT: 0, ActionKind.MOUNT: 1, ActionKind.WRITE_FSTAB: 2,
    ActionKind.DROP_FSTAB: 2, ActionKind.FORGET: 3,
}  # fmt: skip


def _ordered(actions: List[Action]) -> List[Action]:
    """Unmount before mount, so a mount point being reused or switched is free before the new
    mount arrives (kubelet reconcileNew does the same); children unmounted before their parent,
    parents mounted before their children; fstab and ledger follow the mounts they describe."""

    def key(a: Action):
        depth, path = depth_order(a.mount_point)
        if a.kind is ActionKind.UNMOUNT:
            return (0, -depth, path)
        return (_PHASE[a.kind], depth, path)

    return sorted(actions, key=key)


def plan(
    desired: Desired,
    observed: Observed,
    mounters: Mapping[str, Mounter],
    *,
    may_unmount: bool,
    mount_timeout: float = 30.0,
) -> Plan:
    """Decide what to do. `may_unmount` is false until a fetch from the source has succeeded
    since the agent started: until then we mount what the cache says and unmount nothing."""
    return _Planner(desired, observed, mounters, may_unmount, mount_timeout).run()
