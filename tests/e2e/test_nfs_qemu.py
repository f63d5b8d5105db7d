"""NFS for real: the agent drives a real kernel NFS client (v4.2 and v3) in a QEMU guest against nfs-ganesha."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from devtools.ganesha import Ganesha
from devtools.qemu import run_guest
from tests.conftest import need_root
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def ganesha(workdir):
    need_root()
    for tool in ("qemu-system-x86_64", "ganesha.nfsd", "busybox", "mount.nfs", "rpcbind"):
        require(shutil.which(tool) is not None or os.path.exists(f"/sbin/{tool}"),
                f"{tool} (Debian packages qemu-system-x86 nfs-ganesha nfs-ganesha-vfs busybox-static nfs-common rpcbind)")  # fmt: skip
    server = Ganesha(workdir / "ganesha").start()
    yield server
    server.stop()


@pytest.mark.parametrize("version", ["4.2", "3"])
def test_agent_mounts_and_unmounts_nfs_in_a_real_kernel(ganesha, workdir, version):
    export = "10.0.2.100:/export" if version != "3" else f"10.0.2.100:{ganesha.export}"
    wrapper = workdir / f"guest-v{version}.sh"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'nfs_guest.py'} {version} {export}\n")
    wrapper.chmod(0o755)
    start = time.monotonic()
    console = run_guest(str(wrapper), workdir / f"console-v{version}.log")
    seconds = time.monotonic() - start
    # The serial console may put terminal escapes before the line.
    lines = [line for line in console.splitlines() if "GUEST-RESULT " in line]
    assert lines, console[-3000:]
    result = json.loads(lines[-1].split("GUEST-RESULT ", 1)[1])
    assert result["attach_rc"] == 0, result
    assert result["fstype"] == ("nfs" if version == "3" else "nfs4"), result
    assert result["wrote"] is True, result
    assert len(result["lines_attached"]) == 1 and f" {'/mnt/share/data'} nfs " in result["lines_attached"][0]
    assert (ganesha.export / f"from-guest-v{version}.txt").read_text().startswith("written by the guest kernel")
    assert result["detach_rc"] == 0 and result["fstype_after"] is None, result
    assert "x-sharedfs-agent" not in result["fstab_after"] and result["fstab_after"] == "# guest fstab\n"
    print(f"\nNFS v{version} in QEMU: boot, attach, write, detach, poweroff in {seconds:.1f}s")
