"""Each mounter's mount(8) argv and fstab line, against the forms in the projects' own documentation, and hostile input.

References: nfs(5) and mount.nfs(8); the Lustre Operations Manual, "Mounting a Client"
(mount -t lustre MGS_NID@net[:failover]:/fsname /mnt/point); the Ceph docs "Mount CephFS using
the kernel driver" (mount -t ceph mon1:6789,mon2:6789:/ /mnt -o name=…,secretfile=…) and
"Mount CephFS using FUSE" (fstab: none /mnt fuse.ceph ceph.id=…,_netdev,defaults 0 0);
the kernel's virtiofs.rst (mount -t virtiofs TAG /mnt).
"""

from __future__ import annotations

import pytest

from sharedfs_agent.config import AgentConfig
from sharedfs_agent.desired import parse_document
from sharedfs_agent.fstab import MARKER, render_entry
from sharedfs_agent.model import MountRecord
from sharedfs_agent.mounters import registry

MOUNTERS = registry(entry_points=())
BOOT = f"_netdev,nofail,x-systemd.mount-timeout=30,{MARKER}"


def one(fs_type, export, mount_point="/mnt/share", options=(), **extra):
    doc = {"filesystems": [{"name": "x", "fs_type": fs_type, "export": export, "mount_point": mount_point,
                            "mount_options": list(options), **extra}]}  # fmt: skip
    desired = parse_document(doc, MOUNTERS, AgentConfig())
    if desired.rejections:
        return desired.rejections[0].reason
    (fs,) = desired.filesystems
    mounter = MOUNTERS[fs_type]
    return mounter.mount_argv(fs), render_entry(mounter.fstab_entry(fs, 30)).rstrip("\n")


def record(fstype, source, mp="/mnt/share"):
    return MountRecord(1, 0, "0:1", "/", mp, "rw", (), fstype, source, "rw")


# -- NFS ------------------------------------------------------------------------------------


def test_nfs_v42_with_cloud_defaults():
    argv, line = one("nfs", "10.0.0.5:/export/home", options=["vers=4.2"])
    opts = "rw,vers=4.2,nosuid,nodev,hard,timeo=600,retrans=2,noresvport"
    assert argv == ["mount", "-t", "nfs", "-o", opts, "10.0.0.5:/export/home", "/mnt/share"]
    assert line == f"10.0.0.5:/export/home /mnt/share nfs {opts},{BOOT} 0 0"


def test_nfs_v3_and_ipv6_and_overridden_defaults():
    argv, _ = one("nfs", "[fd00::5]:/export/", options=["vers=3", "soft", "timeo=50", "nolock", "port=2049"])
    assert argv[-2] == "[fd00::5]:/export"
    assert argv[4] == "rw,vers=3,soft,timeo=50,nolock,port=2049,nosuid,nodev,retrans=2,noresvport"


@pytest.mark.parametrize(
    "export, options, words",
    [
        ("10.0.0.5:/export -o suid", [], "not host:/path"),
        ("10.0.0.5:/../etc", [], "not host:/path"),
        ("-o:/x", [], "not host:/path"),
        ("10.0.0.5:/x", ["vers=4.0"], "does not match"),
        ("10.0.0.5:/x", ["vers=4"], "does not match"),
        ("10.0.0.5:/x", ["clientaddr=1.2.3.4"], "not allowed"),
        ("10.0.0.5:/x", ["sec=none"], "does not match"),
    ],
)
def test_nfs_hostile(export, options, words):
    assert words in one("nfs", export, options=options)


def test_nfs_matches_across_the_forms_the_kernel_shows():
    nfs = MOUNTERS["nfs"]
    assert nfs.is_mount_of("10.0.0.5:/export", record("nfs4", "10.0.0.5:/export"))
    assert nfs.is_mount_of("10.0.0.5:/export", record("nfs", "10.0.0.5:/export/"))
    assert nfs.is_mount_of("[fd00::5]:/e", record("nfs4", "[fd00::5]:/e"))
    assert not nfs.is_mount_of("10.0.0.5:/export", record("nfs4", "10.0.0.6:/export"))
    assert not nfs.is_mount_of("10.0.0.5:/export", record("fuse.glusterfs", "10.0.0.5:/export"))
    assert nfs.packages == {"debian": "nfs-common", "rhel": "nfs-utils"}


# -- Lustre ---------------------------------------------------------------------------------


def test_lustre_failover_mgs_and_flock_by_default():
    argv, line = one("lustre", "10.2.0.1@o2ib:10.2.0.2@o2ib:/lustre")
    assert argv == ["mount", "-t", "lustre", "-o", "rw,nosuid,nodev,flock", "10.2.0.1@o2ib:10.2.0.2@o2ib:/lustre",
                    "/mnt/share"]  # fmt: skip
    assert line.startswith("10.2.0.1@o2ib:10.2.0.2@o2ib:/lustre /mnt/share lustre rw,nosuid,nodev,flock,_netdev")
    argv, _ = one("lustre", "mgs1@tcp0,mgs1b@tcp1:/scratch/sub", options=["localflock"])
    assert argv[4] == "rw,localflock,nosuid,nodev"


@pytest.mark.parametrize(
    "export",
    [
        "10.0.0.1@tcp,flock:/fs",
        "10.0.0.1@tcp -o suid:/fs",
        "10.0.0.1@udp:/fs",
        "10.0.0.1:/fs",
        "10.0.0.1@tcp:/toolongfsname",
        "10.0.0.1@tcp:/fs/../etc",
    ],
)
def test_lustre_hostile_nids(export):
    assert "mgsnid" in one("lustre", export)


# -- CephFS ---------------------------------------------------------------------------------


def test_cephfs_kernel_client_as_documented():
    argv, line = one("cephfs", "192.168.0.1:6789,192.168.0.2:6789:/", options=["name=admin",
                     "secretfile=/etc/ceph/admin.secret", "fs=cephfs"])  # fmt: skip
    opts = "rw,name=admin,secretfile=/etc/ceph/admin.secret,fs=cephfs,nosuid,nodev"
    assert argv == ["mount", "-t", "ceph", "-o", opts, "192.168.0.1:6789,192.168.0.2:6789:/", "/mnt/share"]
    assert line == f"192.168.0.1:6789,192.168.0.2:6789:/ /mnt/share ceph {opts},{BOOT} 0 0"


def test_cephfs_secret_never_inline_and_never_echoed():
    key = "AQATSKdNGBnwLhAAnNDKnH65FmVKpXZJVasUeQ=="
    reason = one("cephfs", "mon1:/", options=["name=admin", f"secret={key}"])
    assert "secretfile=" in reason and key not in reason
    assert "does not match" in one("cephfs", "mon1:/", options=["secretfile=/root/key"])


def test_cephfs_paths_never_climb():
    assert "not mon" in one("cephfs", "mon1:6789:/volumes/../etc")
    assert "not a /path" in one("ceph-fuse", "/volumes/..")


def test_ceph_fuse_alternative():
    argv, line = one("ceph-fuse", "/volumes/grp/sub", options=["ceph.id=admin"])
    assert argv == ["mount", "-t", "fuse.ceph", "-o", "rw,ceph.id=admin,nosuid,nodev,ceph.client_mountpoint=/volumes/grp/sub",
                    "none", "/mnt/share"]  # fmt: skip
    assert line.startswith("none /mnt/share fuse.ceph ceph.client_mountpoint=/volumes/grp/sub,rw,ceph.id=admin,")
    assert MOUNTERS["ceph-fuse"].fuse  # its daemon gets a scope of its own, like glusterfs


def test_ceph_fuse_key_from_a_secretfile_under_etc_ceph_only():
    argv, _ = one("ceph-fuse", "/vol", options=["ceph.id=sfs", "ceph.keyfile=/etc/ceph/sfs.secret"])
    assert "ceph.keyfile=/etc/ceph/sfs.secret" in argv[4]
    assert "does not match" in one("ceph-fuse", "/vol", options=["ceph.keyfile=/root/sfs.secret"])


# -- virtiofs -------------------------------------------------------------------------------


def test_virtiofs_tag():
    argv, line = one("virtiofs", "manila-share-1")
    assert argv == ["mount", "-t", "virtiofs", "-o", "rw,nosuid,nodev", "manila-share-1", "/mnt/share"]
    assert line == f"manila-share-1 /mnt/share virtiofs rw,nosuid,nodev,nofail,x-systemd.mount-timeout=30,{MARKER} 0 0"
    assert "virtiofs tag" in one("virtiofs", "a" * 37)
    assert "virtiofs tag" in one("virtiofs", "tag /etc")


def test_every_builtin_names_its_package_and_kernel_types():
    for name, mounter in MOUNTERS.items():
        assert mounter.fs_type == name and mounter.kernel_fstypes and mounter.packages
