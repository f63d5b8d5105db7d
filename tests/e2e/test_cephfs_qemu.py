"""CephFS for real: the agent mounts a live CephFS with the guest kernel's ceph client, in a QEMU guest
plugged into the cluster's network namespace: with a cephx key in a secretfile under /etc/ceph, then
(same boot) a subvolume the `cephfs` API driver made, with the instance's own key from its own view."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from devtools.apiserver import ApiServer
from devtools.ceph import ADDRESS, CLIENT, TAP
from devtools.qemu import run_guest
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]
OPTIONS = [f"name={CLIENT}", f"secretfile=/etc/ceph/{CLIENT}.secret"]


MP = "/mnt/share/data"  # share_guest.py's mount point
SECRET_DIR = "/mnt/sfs/secrets"  # on the guest's tmpfs (its /etc/ceph is the host's, read-only)


def driver_view(ceph_cluster, server: ApiServer, view_file: Path) -> dict:
    """Through the API: a subvolume kcfs1, vm1 connected, vm1's own view (its key in `secret`) fetched
    with vm1's token and written where the guest reads it (0600): the document vm1's agent gets."""
    admin = server.token("admin")
    put = server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": []}})
    assert put.status_code == 201, put.text
    created = server.call("PUT", "/v1.1/p1/os-filesystem/kcfs1", admin,
                          json={"fs_entry": {"size": "16Mb", "mount_point": MP}})  # fmt: skip
    assert created.status_code == 202, created.text
    entry = server.settled(admin, "p1", "kcfs1")
    assert (entry["status"], entry["fs_type"]) == ("available", "cephfs"), entry
    assert server.call("PUT", "/v1.1/p1/os-filesystem/kcfs1/instances/vm1", admin).status_code == 201
    answer = server.call("GET", "/v1.1/p1/os-instances/vm1/filesystems", server.token("instance", "p1", "vm1"))
    assert answer.status_code == 200, answer.text
    (own,) = answer.json()["filesystems"]
    assert own["secret"] and own["export"].startswith(f"{ADDRESS}:6789:/volumes/sharedfs/kcfs1/"), own
    assert "name=sfs.kcfs1.vm1" in own["mount_options"], own
    view_file.touch(mode=0o600)
    view_file.write_text(json.dumps(own))
    return own


def test_agent_mounts_cephfs_with_the_kernel_client_remounts_on_a_new_path_and_unmounts(ceph_cluster, workdir):
    for tool in ("qemu-system-x86_64", "busybox", "mount.ceph"):
        require(shutil.which(tool) is not None, f"{tool} (Debian packages qemu-system-x86 busybox-static ceph-common)")
    for path in ("/kvol1", "/kvol2"):
        ceph_cluster.mkdir(path)
    # The guest sees the host's / read-only: its /etc/ceph becomes the cluster's (conf + the secretfile),
    # as an instance's would be laid by its operator; the key never appears in argv, fstab or the log.
    wrapper = workdir / "guest-cephfs.sh"
    # Then, in the same boot, the driver's subvolume with vm1's own key, from vm1's own view.
    server = ApiServer(workdir / "cephfs-kernel-api", driver="cephfs", driver_opts={
        "ceph_command": f"ip netns exec {ceph_cluster.netns} ceph", "conf": str(ceph_cluster.conf), "client": "kernel",
    }).start()  # fmt: skip
    try:
        own = driver_view(ceph_cluster, server, workdir / "vm1-view.json")
        script = f"{sys.executable} {HERE / 'share_guest.py'}"
        wrapper.write_text(f"#!/bin/sh\nmount --bind {ceph_cluster.etc} /etc/ceph || exit 1\n"
                           f"{script} --remount-to {ADDRESS}:6789:/kvol2 cephfs {ADDRESS}:6789:/kvol1 {' '.join(OPTIONS)}\n"
                           f"{script} --entry {workdir / 'vm1-view.json'} {SECRET_DIR}\n")  # fmt: skip
        wrapper.chmod(0o755)
        start = time.monotonic()
        console = run_guest(str(wrapper), workdir / "console-cephfs.log", tap=(ceph_cluster.netns, TAP))
        seconds = time.monotonic() - start
        results = {}
        for line in console.splitlines():
            if "GUEST-RESULT " in line:
                found = json.loads(line.split("GUEST-RESULT ", 1)[1])
                results[found["from"]] = found
        assert set(results) == {"argv", "view"}, console[-3000:]
        check_driver_mount(ceph_cluster, server, own, results["view"], console)
        # The session's cluster is shared: the subvolume and vm1's cephx client go with the filesystem.
        admin = server.token("admin")
        assert server.call("DELETE", "/v1.1/p1/os-filesystem/kcfs1", admin).status_code == 202
        assert server.settled(admin, "p1", "kcfs1") is None
    finally:
        server.stop()
    result = results["argv"]
    said = json.dumps(result, indent=1)
    key = (ceph_cluster.etc / f"{CLIENT}.secret").read_text().strip()
    assert key not in said and key not in console  # neither in the agent's log nor in fstab

    assert result["attach_rc"] == 0, said
    assert (result["fstype"], result["source"]) == ("ceph", f"{ADDRESS}:6789:/kvol1"), said
    assert result["wrote"] is True, said
    assert ceph_cluster.read("/kvol1/from-guest.txt") == "written by the guest kernel's cephfs client\n"
    (line,) = result["lines_attached"]
    assert line.startswith(
        f"{ADDRESS}:6789:/kvol1 /mnt/share/data ceph rw,name={CLIENT},secretfile=/etc/ceph/{CLIENT}.secret,"
    ), line
    assert result["converged_rc"] == 0, said

    # A changed path: unmounted and mounted afresh; the next file lands in the new directory only.
    assert result["remount_rc"] == 0 and "remount" in result["remount_log"], said
    assert (result["fstype_remounted"], result["source_remounted"]) == ("ceph", f"{ADDRESS}:6789:/kvol2"), said
    assert result["wrote_remounted"] is True, said
    assert ceph_cluster.read("/kvol2/from-guest-remounted.txt") == "written after the cephfs remount\n"
    assert ceph_cluster.read("/kvol1/from-guest-remounted.txt") is None
    (line,) = result["lines_remounted"]
    assert line.startswith(f"{ADDRESS}:6789:/kvol2 /mnt/share/data ceph "), line

    assert result["detach_rc"] == 0 and result["fstype_after"] is None, said
    assert result["fstab_after"] == "# guest fstab\n", said
    print(
        f"\nCephFS kernel client in QEMU: boot, attach, write, remount on a new path, write, detach, "
        f"then the driver's subvolume with the instance's own key: attach, write, detach; poweroff in {seconds:.1f}s"
    )


def check_driver_mount(ceph_cluster, server: ApiServer, own: dict, result: dict, console: str) -> None:
    """The guest mounted the driver's subvolume as vm1 (`name=` its cephx id, `secretfile=` the agent's
    0600 file of the key), wrote through it, and the key showed nowhere but in that file."""
    said = json.dumps(result, indent=1)
    key = own["secret"]
    assert key not in said and key not in console, "the instance's key reached the guest's log or report"
    # Not in the agent's logs, fstab, ledger, status or the mount table; while wanted, in the agent's
    # last-known-good copy of its view (docs/agent.md "Secrets"), root's alone, and gone with it.
    assert result["secret_seen_mounted"] == ["/mnt/sfs/state/desired-file.json"], said
    assert result["cache_mode"] == "0o600" and result["secret_seen_after"] == [], said
    assert result["attach_rc"] == 0, said
    secret_file = f"{SECRET_DIR}/sharedfs-kcfs1.secret"
    assert result["secret_file"] == [secret_file, "0o600", 0, True], said
    assert (result["fstype"], result["source"]) == ("ceph", own["export"]), said
    assert result["wrote"] is True, said
    path = own["export"].split(":", 2)[2]
    assert ceph_cluster.read(f"{path}/from-guest.txt") == "written by the guest kernel's cephfs client\n"
    (line,) = result["lines_attached"]
    source, mount_point, fstype, options = line.split()[:4]
    assert (source, mount_point, fstype) == (own["export"], MP, "ceph"), line
    assert {"name=sfs.kcfs1.vm1", f"secretfile={secret_file}"} <= set(options.split(",")), line
    assert result["converged_rc"] == 0 and result["detach_rc"] == 0 and result["fstype_after"] is None, said
    assert result["secret_file_after"] is False, said  # removed with the filesystem's entry
    assert key not in (server.base / f"server-{server.port}.log").read_text()
