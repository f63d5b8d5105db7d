"""virtiofs for real: the agent mounts a share that virtiofsd serves, in a QEMU guest's kernel, from a
document and from Nova's share devices (a loopback metadata service), in one boot."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from devtools.metadata import MetadataServer
from devtools.qemu import run_guest
from devtools.virtiofs import VIRTIOFSD, Virtiofsd
from tests.conftest import need_root
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]
TAG = "sfsshare"
NOVA = HERE.parent / "fixtures" / "nova" / "meta_data_with_share.json"
METADATA_PORT = 8775  # the guest's side of the forward to the loopback metadata server


def test_agent_mounts_and_unmounts_a_virtiofs_share_and_a_nova_share_device(workdir):
    need_root()
    require(os.access(VIRTIOFSD, os.X_OK), f"{VIRTIOFSD} (Debian package qemu-system-common)")
    for tool in ("qemu-system-x86_64", "busybox"):
        require(shutil.which(tool) is not None, f"{tool} (Debian packages qemu-system-x86 busybox-static)")
    share = workdir / "virtiofs-share"
    share.mkdir()
    (share / "host.txt").write_text("from the host\n")
    server = Virtiofsd(share, workdir / "virtiofs.sock").start()
    wrapper = workdir / "guest-virtiofs.sh"
    wrapper.write_text(f"#!/bin/sh\n{sys.executable} {HERE / 'share_guest.py'} virtiofs {TAG}\n"
                       f"exec {sys.executable} {HERE / 'nova_share_guest.py'} http://10.0.2.100:{METADATA_PORT} {TAG}\n")
    wrapper.chmod(0o755)
    # Nova's format, the share device's tag being the one virtiofsd serves.
    meta = json.loads(NOVA.read_text())
    meta["devices"] = [d if d["type"] != "share" else {**d, "tag": TAG} for d in meta["devices"]]
    try:
        with MetadataServer(meta) as metadata:
            start = time.monotonic()
            console = run_guest(str(wrapper), workdir / "console-virtiofs.log", virtiofs=(server.socket, TAG),
                                forwards=[(METADATA_PORT, metadata.port)])  # fmt: skip
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

    # Nova's share device: mounted by the nova-shares source, unmounted once the device is gone.
    lines = [line for line in console.splitlines() if "NOVA-RESULT " in line]
    assert lines, console[-3000:]
    nova = json.loads(lines[-1].split("NOVA-RESULT ", 1)[1])
    assert nova["attach_rc"] == 0, nova
    assert nova["mounted"] == ["virtiofs", TAG], nova
    assert nova["read"] == "from the host\n", nova
    (line,) = nova["lines_attached"]
    assert line.startswith(f"{TAG} /mnt/share/nova/{TAG} virtiofs "), line
    assert nova["detached_on_server"] == 200 and metadata.meta["devices"] == [], nova
    assert nova["detach_rc"] == 0 and nova["mounted_after"] is None, nova
    assert nova["fstab_after"] == "# guest fstab\n", nova
    assert metadata.requests >= 2
    print(f"\nvirtiofs in QEMU: boot, attach, write, detach, a Nova share device attached and detached, "
          f"poweroff in {seconds:.1f}s")
