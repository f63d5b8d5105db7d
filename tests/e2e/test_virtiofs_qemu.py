"""virtiofs for real: the agent mounts a share that virtiofsd serves, in a QEMU guest's kernel."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from devtools.qemu import run_guest
from devtools.virtiofs import VIRTIOFSD, Virtiofsd
from tests.conftest import need_root
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]
TAG = "sfsshare"


def test_agent_mounts_and_unmounts_a_virtiofs_share(workdir):
    need_root()
    require(os.access(VIRTIOFSD, os.X_OK), f"{VIRTIOFSD} (Debian package qemu-system-common)")
    for tool in ("qemu-system-x86_64", "busybox"):
        require(shutil.which(tool) is not None, f"{tool} (Debian packages qemu-system-x86 busybox-static)")
    share = workdir / "virtiofs-share"
    share.mkdir()
    (share / "host.txt").write_text("from the host\n")
    server = Virtiofsd(share, workdir / "virtiofs.sock").start()
    wrapper = workdir / "guest-virtiofs.sh"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'share_guest.py'} virtiofs {TAG}\n")
    wrapper.chmod(0o755)
    try:
        start = time.monotonic()
        console = run_guest(str(wrapper), workdir / "console-virtiofs.log", virtiofs=(server.socket, TAG))
        seconds = time.monotonic() - start
    finally:
        server.stop()
    lines = [line for line in console.splitlines() if "GUEST-RESULT " in line]
    assert lines, console[-3000:]
    result = json.loads(lines[-1].split("GUEST-RESULT ", 1)[1])
    assert result["attach_rc"] == 0, result
    assert result["fstype"] == "virtiofs", result
    assert result["wrote"] is True, result
    assert (share / "from-guest.txt").read_text() == "written by the guest kernel's virtiofs client\n"
    (line,) = result["lines_attached"]
    assert line.startswith(f"{TAG} /mnt/share/data virtiofs "), line
    assert result["converged_rc"] == 0, result
    assert result["detach_rc"] == 0 and result["fstype_after"] is None, result
    assert result["fstab_after"] == "# guest fstab\n"
    print(f"\nvirtiofs in QEMU: boot, attach, write, detach, poweroff in {seconds:.1f}s")
