"""NFS for real: the agent drives a real kernel NFS client (v4.2 and v3) in a QEMU guest against nfs-ganesha."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.ganesha import Ganesha
from devtools.qemu import run_guest
from devtools.virtiofs import VIRTIOFSD, Virtiofsd
from tests.conftest import need_root
from tests.support import require

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.root]
CONTROL_PORT = 8776  # the guest's side of the forward to the test's control server
VERSIONS = ["4.2", "3"]


@pytest.fixture(scope="module")
def ganesha(workdir):
    need_root()
    for tool in ("qemu-system-x86_64", "ganesha.nfsd", "busybox", "mount.nfs", "rpcbind"):
        require(shutil.which(tool) is not None or os.path.exists(f"/sbin/{tool}"),
                f"{tool} (Debian packages qemu-system-x86 nfs-ganesha nfs-ganesha-vfs busybox-static nfs-common rpcbind)")  # fmt: skip
    server = Ganesha(workdir / "ganesha").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def versions_in_one_boot(ganesha, workdir):
    """One guest for both versions, a boot saved: nfs_guest.py for each in turn (its own agent files);
    each version's GUEST-RESULT, and the console."""
    wrapper = workdir / "guest-versions.sh"
    script = ["#!/bin/sh"]
    for version in VERSIONS:
        export = "10.0.2.100:/export" if version != "3" else f"10.0.2.100:{ganesha.export}"
        script.append(f"{sys.executable} {HERE / 'nfs_guest.py'} {version} {export}")
    wrapper.write_text("\n".join(script) + "\n")
    wrapper.chmod(0o755)
    start = time.monotonic()
    console = run_guest(str(wrapper), workdir / "console-versions.log")
    seconds = time.monotonic() - start
    print(f"\nNFS v4.2 and v3 in QEMU: boot, then for each attach, write, detach; poweroff in {seconds:.1f}s")
    results = {}
    for line in console.splitlines():  # the serial console may put terminal escapes before the line
        if "GUEST-RESULT " in line:
            found = json.loads(line.split("GUEST-RESULT ", 1)[1])
            results[found["version"]] = found
    return results, console


@pytest.mark.parametrize("version", VERSIONS)
def test_agent_mounts_and_unmounts_nfs_in_a_real_kernel(versions_in_one_boot, ganesha, version):
    results, console = versions_in_one_boot
    assert version in results, console[-3000:]
    result = results[version]
    assert result["attach_rc"] == 0, result
    assert result["fstype"] == ("nfs" if version == "3" else "nfs4"), result
    assert result["wrote"] is True, result
    assert len(result["lines_attached"]) == 1 and f" {'/mnt/share/data'} nfs " in result["lines_attached"][0]
    assert (ganesha.export / f"from-guest-v{version}.txt").read_text().startswith("written by the guest kernel")
    assert result["detach_rc"] == 0 and result["fstype_after"] is None, result
    assert "x-sharedfs-agent" not in result["fstab_after"] and result["fstab_after"] == "# guest fstab\n"


class Control:
    """A loopback HTTP server the guest POSTs to (`/ACTION`) to have the host do ACTION."""

    def __init__(self, actions) -> None:
        self.actions, self.done = actions, []

    def __enter__(self) -> Control:
        control = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                action = control.actions.get(self.path.lstrip("/"))
                if action is not None:
                    action()
                    control.done.append(self.path.lstrip("/"))
                self.send_response(200 if action is not None else 404)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_stale_handle_is_remounted_and_a_dead_server_is_left_alone_while_the_rest_goes_on(ganesha, workdir):
    require(os.access(VIRTIOFSD, os.X_OK), f"{VIRTIOFSD} (Debian package qemu-system-common)")
    faults = ganesha.export / "faults"
    faults.mkdir()
    share = workdir / "faults-share"
    share.mkdir()
    server = Virtiofsd(share, workdir / "faults-virtiofs.sock").start()

    def recreate() -> None:  # the export removed and re-created under the mounted client
        shutil.rmtree(faults)
        faults.mkdir()
        (faults / "marker.txt").write_text("re-created\n")

    actions = {"stale": recreate, "stop": lambda: os.kill(ganesha.proc.pid, signal.SIGSTOP),
               "cont": lambda: os.kill(ganesha.proc.pid, signal.SIGCONT)}  # fmt: skip
    wrapper = workdir / "guest-faults.sh"
    try:
        with Control(actions) as control:
            wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'nfs_faults_guest.py'} "
                               f"http://10.0.2.100:{CONTROL_PORT} 10.0.2.100:/export/faults sfsother\n")  # fmt: skip
            wrapper.chmod(0o755)
            start = time.monotonic()
            console = run_guest(str(wrapper), workdir / "console-faults.log", virtiofs=(server.socket, "sfsother"),
                                forwards=[(CONTROL_PORT, control.httpd.server_address[1])])  # fmt: skip
            seconds = time.monotonic() - start
    finally:
        os.kill(ganesha.proc.pid, signal.SIGCONT)
        server.stop()
    lines = [line for line in console.splitlines() if "FAULT-RESULT " in line]
    assert lines, console[-3000:]
    result = json.loads(lines[-1].split("FAULT-RESULT ", 1)[1])
    said = json.dumps(result, indent=1)  # whole, where pytest would shorten a dict
    assert result["attach_rc"] == 0 and result["mounted"], said
    # ESTALE: detected by the probe, unmounted and mounted afresh, and the new directory is seen.
    assert result["stale_control"] == 200 and result["stale_rc"] == 0, said
    assert "remount: mount is broken (ESTALE" in result["stale_log"], said
    assert result["mounted_after_stale"] and result["read_after_remount"] == "re-created\n", said
    # A server that stops answering: error, left mounted; the other mount and status go on.
    assert control.done == ["stale", "stop", "cont"]
    assert result["pass_still_waiting_when_status_answered"], said  # status never waits on the server
    assert result["dead_rc"] == 1, said
    assert result["dead_seconds"] < result["probe_timeout"] + 30, said  # one probe timeout, not a hang
    assert result["dead_states"]["nfs"][0] == "error", said
    assert result["dead_states"]["other"][0] == "mounted", said
    assert result["nfs_left_alone"] and result["other_mounted"], said
    assert result["recovered_rc"] == 0, said
    assert result["detach_rc"] == 0 and result["after"] == [None, None], said
    print(f"\nNFS faults in QEMU: ESTALE remounted; dead server reported in {result['dead_seconds']:.1f}s while "
          f"status answered in {result['status_seconds']:.2f}s; boot to poweroff {seconds:.1f}s")
