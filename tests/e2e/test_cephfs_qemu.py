"""CephFS for real: the agent mounts a live CephFS with the guest kernel's ceph client, a cephx key in a
secretfile under /etc/ceph, in a QEMU guest plugged into the cluster's network namespace."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from devtools.ceph import ADDRESS, CLIENT, TAP
from devtools.qemu import run_guest
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]
OPTIONS = [f"name={CLIENT}", f"secretfile=/etc/ceph/{CLIENT}.secret"]


def test_agent_mounts_cephfs_with_the_kernel_client_remounts_on_a_new_path_and_unmounts(ceph_cluster, workdir):
    for tool in ("qemu-system-x86_64", "busybox", "mount.ceph"):
        require(shutil.which(tool) is not None, f"{tool} (Debian packages qemu-system-x86 busybox-static ceph-common)")
    for path in ("/kvol1", "/kvol2"):
        ceph_cluster.mkdir(path)
    # The guest sees the host's / read-only: its /etc/ceph becomes the cluster's (conf + the secretfile),
    # as an instance's would be laid by its operator; the key never appears in argv, fstab or the log.
    wrapper = workdir / "guest-cephfs.sh"
    wrapper.write_text(f"#!/bin/sh\nmount --bind {ceph_cluster.etc} /etc/ceph || exit 1\n"
                       f"exec {sys.executable} {HERE / 'share_guest.py'} --remount-to {ADDRESS}:6789:/kvol2 "
                       f"cephfs {ADDRESS}:6789:/kvol1 {' '.join(OPTIONS)}\n")  # fmt: skip
    wrapper.chmod(0o755)
    start = time.monotonic()
    console = run_guest(str(wrapper), workdir / "console-cephfs.log", tap=(ceph_cluster.netns, TAP))
    seconds = time.monotonic() - start
    lines = [line for line in console.splitlines() if "GUEST-RESULT " in line]
    assert lines, console[-3000:]
    result = json.loads(lines[-1].split("GUEST-RESULT ", 1)[1])
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
        f"poweroff in {seconds:.1f}s"
    )
