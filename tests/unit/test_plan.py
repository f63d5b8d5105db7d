"""plan(): every reconcile rule as a fixture-driven case (pure data in, pure data out)."""

from __future__ import annotations

from sharedfs_agent.desired import Desired
from sharedfs_agent.fstab import MARKER
from sharedfs_agent.model import (
    ActionKind,
    Filesystem,
    FstabEntry,
    MountRecord,
    Observed,
    OwnedMount,
    PathState,
    Rejection,
    State,
)
from sharedfs_agent.mounters import registry
from sharedfs_agent.plan import plan

MOUNTERS = registry(entry_points=())
GLUSTER = MOUNTERS["glusterfs"]


def fs(name="home", mp="/mnt/home", export="gl1:/home", options=("nosuid", "nodev")) -> Filesystem:
    return Filesystem(name, "glusterfs", export, mp, options)


def record(mp, source="gl1:/home", fstype="fuse.glusterfs", mount_id=100) -> MountRecord:
    return MountRecord(mount_id, 1, "0:50", "/", mp, "rw", (), fstype, source, "rw")


def line(f: Filesystem) -> FstabEntry:
    return GLUSTER.fstab_entry(f, 30.0)


def observed(mounts=(), lines=(), foreign=(), owned=(), **extra) -> Observed:
    return Observed(
        mounts={r.mount_point: r for r in mounts},
        fstab_owned={e.file: e for e in lines},
        fstab_foreign={e.file: e for e in foreign},
        ledger={o.filesystem.mount_point: o for o in owned},
        **extra,
    )


def converged(f: Filesystem, **extra) -> Observed:
    return observed([record(f.mount_point, f.export)], [line(f)], owned=[OwnedMount(f)], **extra)


def run(desired=(), obs=None, rejections=(), may_unmount=True):
    return plan(Desired(tuple(desired), tuple(rejections)), obs or observed(), MOUNTERS, may_unmount=may_unmount)


def kinds(p):
    return [(a.kind, a.mount_point) for a in p.actions]


def states(p):
    return {v.name: (v.state, v.detail) for v in p.verdicts}


def test_new_filesystem_is_mounted_and_recorded():
    p = run([fs()])
    assert kinds(p) == [(ActionKind.MOUNT, "/mnt/home"), (ActionKind.WRITE_FSTAB, "/mnt/home")]
    assert p.actions[1].fstab_entry.mntops.endswith(f"_netdev,nofail,x-systemd.mount-timeout=30,{MARKER}")
    assert states(p)["home"][0] is State.PENDING


def test_converged_does_nothing():
    p = run([fs()], converged(fs()))
    assert p.converged
    assert states(p)["home"] == (State.MOUNTED, "")


def test_mounted_without_line_gets_its_line_back():
    f = fs()
    assert kinds(run([f], observed([record(f.mount_point)], owned=[OwnedMount(f)]))) == [
        (ActionKind.WRITE_FSTAB, "/mnt/home")
    ]


def test_line_without_mount_gets_mounted():
    f = fs()
    assert kinds(run([f], observed(lines=[line(f)], owned=[OwnedMount(f)]))) == [(ActionKind.MOUNT, "/mnt/home")]


def test_boot_mount_from_our_line_is_ours_without_a_ledger():
    f = fs()
    assert run([f], observed([record(f.mount_point)], [line(f)])).converged


def test_changed_export_is_unmount_then_mount():
    old, new = fs(), fs(export="gl2:/home2")
    p = run([new], converged(old))
    assert kinds(p)[:2] == [(ActionKind.UNMOUNT, "/mnt/home"), (ActionKind.MOUNT, "/mnt/home")]
    assert "export changed from gl1:/home" in p.actions[0].reason
    assert p.actions[2].kind is ActionKind.WRITE_FSTAB


def test_changed_options_is_unmount_then_mount():
    p = run([fs(options=("acl", "nosuid", "nodev"))], converged(fs()))
    assert kinds(p)[:2] == [(ActionKind.UNMOUNT, "/mnt/home"), (ActionKind.MOUNT, "/mnt/home")]
    assert "options changed" in p.actions[0].reason


def test_broken_mount_is_remounted_and_hung_one_is_reported():
    f = fs()
    p = run([f], converged(f, broken={f.mount_point: "ENOTCONN: Transport endpoint is not connected"}))
    assert kinds(p) == [(ActionKind.UNMOUNT, "/mnt/home"), (ActionKind.MOUNT, "/mnt/home")]
    p = run([f], converged(f, hung={f.mount_point: "no answer within 5s"}))
    assert p.converged
    assert states(p)["home"][0] is State.ERROR


def test_detached_is_unmounted_and_forgotten():
    p = run([], converged(fs()))
    assert kinds(p) == [
        (ActionKind.UNMOUNT, "/mnt/home"),
        (ActionKind.DROP_FSTAB, "/mnt/home"),
        (ActionKind.FORGET, "/mnt/home"),
    ]


def test_nothing_is_unmounted_before_a_fresh_fetch():
    assert run([], converged(fs()), may_unmount=False).converged


def test_mounts_we_do_not_own_are_never_touched():
    foreign = record("/mnt/home", "nfs1:/x", "nfs4")
    assert run([], observed([foreign])).converged
    p = run([fs()], observed([foreign]))
    assert p.converged
    assert "mount we did not make" in states(p)["home"][1]


def test_foreign_mount_over_ours_is_not_touched():
    f = fs()
    covered = observed([record(f.mount_point, "tmpfs", "tmpfs", 200)], [line(f)], owned=[OwnedMount(f)])
    assert kinds(run([], covered)) == [(ActionKind.DROP_FSTAB, "/mnt/home"), (ActionKind.FORGET, "/mnt/home")]


def test_foreign_fstab_line_is_a_conflict():
    p = run([fs()], observed(foreign=[FstabEntry("/dev/sdb1", "/mnt/home", "ext4")]))
    assert p.converged
    assert "fstab line we did not write" in states(p)["home"][1]


def test_non_empty_directory_is_refused_unless_allowed():
    obs = observed(paths={"/mnt/home": PathState.NONEMPTY_DIR})
    p = run([fs()], obs)
    assert p.converged
    assert "allow_nonempty" in states(p)["home"][1]
    allowed = Filesystem("home", "glusterfs", "gl1:/home", "/mnt/home", (), allow_nonempty=True)
    assert kinds(run([allowed], obs))[0] == (ActionKind.MOUNT, "/mnt/home")


def test_symlinked_mount_point_is_refused():
    p = run([fs()], observed(paths={"/mnt/home": PathState.SYMLINK}))
    assert p.converged and states(p)["home"][0] is State.ERROR


def test_refused_update_does_not_detach():
    obs = converged(fs())
    by_mount_point = Rejection("home", "option 'suid' is refused", "/mnt/home")
    by_name = Rejection("home", "mount_point '/etc' is inside the system directory /etc", None)
    for rejection in (by_mount_point, by_name):
        p = run([], obs, rejections=[rejection])
        assert p.converged
        assert states(p)["home"][0] is State.ERROR


def test_unmount_deepest_first_then_mount_parents_first():
    old = [fs("a", "/mnt/a", "h:/a"), fs("ab", "/mnt/a/b", "h:/ab")]
    new = [fs("x", "/srv/x/y", "h:/xy"), fs("w", "/srv/x", "h:/x")]
    obs = observed(
        [record(f.mount_point, f.export, mount_id=i) for i, f in enumerate(old)],
        [line(f) for f in old],
        owned=[OwnedMount(f) for f in old],
    )
    order = [(a.kind, a.mount_point) for a in run(new, obs).actions if a.kind in (ActionKind.MOUNT, ActionKind.UNMOUNT)]
    assert order == [
        (ActionKind.UNMOUNT, "/mnt/a/b"),
        (ActionKind.UNMOUNT, "/mnt/a"),
        (ActionKind.MOUNT, "/srv/x"),
        (ActionKind.MOUNT, "/srv/x/y"),
    ]


def test_moved_mount_point_releases_the_old_one_first():
    p = run([fs(mp="/mnt/new")], converged(fs(mp="/mnt/old")))
    assert kinds(p)[:2] == [(ActionKind.UNMOUNT, "/mnt/old"), (ActionKind.MOUNT, "/mnt/new")]


def test_ceph_boot_mounts_from_our_lines_are_ours_without_a_ledger():
    # Our ceph lines say "ceph" and "fuse.ceph" (what mount(8) takes), not the mounter names.
    kernel = Filesystem("k", "cephfs", "10.0.0.1:6789:/vol", "/mnt/k", ("nosuid", "nodev"))
    fuse = Filesystem("f", "ceph-fuse", "/vol", "/mnt/f", ("nosuid", "nodev"))
    lines = [MOUNTERS["cephfs"].fstab_entry(kernel, 30.0), MOUNTERS["ceph-fuse"].fstab_entry(fuse, 30.0)]
    assert [e.vfstype for e in lines] == ["ceph", "fuse.ceph"]
    mounts = [record("/mnt/k", "10.0.0.1:6789:/vol", "ceph", 101), record("/mnt/f", "ceph-fuse", "fuse.ceph-fuse", 102)]
    p = run([kernel, fuse], observed(mounts, lines))
    assert p.converged and states(p) == {"k": (State.MOUNTED, ""), "f": (State.MOUNTED, "")}
    # Detached with the ledger gone: still ours, unmounted by the right mounter.
    p = run([], observed(mounts, lines))
    assert sorted((a.kind, a.mount_point, a.fs_type) for a in p.actions if a.kind is ActionKind.UNMOUNT) == [
        (ActionKind.UNMOUNT, "/mnt/f", "ceph-fuse"), (ActionKind.UNMOUNT, "/mnt/k", "cephfs")]
