"""The main job on one machine: a real GlusterFS volume attached, mounted, reported, detached.

Runs as root (scripts/demo.sh sets everything up first). glusterd runs with a private state
directory on loopback; the agent runs in a private mount namespace with its own fstab, so the
host's mount table and /etc/fstab are never touched. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.gluster import Glusterd  # noqa: E402
from devtools.namespace import MountNamespace  # noqa: E402

BASE = REPO / ".work" / "demo"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def main() -> int:
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    (BASE / "fstab").write_text(
        "# the instance's own fstab: the agent keeps every byte of this\nUUID=0a1b / ext4 defaults 0 1\n"
    )
    config = BASE / "agent.conf"
    config.write_text(
        f"[agent]\nsource = file\nstate_dir = {BASE}/state\nfstab = {BASE}/fstab\n"
        f"allowed_roots = {BASE}/mnt\n[file]\npath = {BASE}/filesystems.json\n"
    )
    server = Glusterd(BASE / "glusterd")
    ns = None
    try:
        step("start a single-node GlusterFS (private state dir, 127.0.0.1 only) and create volume 'projecthome'")
        server.start()
        export = server.create_volume("projecthome")
        print(f"export: {export}")

        ns = MountNamespace()

        def agent(*args: str) -> int:
            print(f"$ sharedfs-agent {' '.join(args)}", flush=True)
            return subprocess.run(
                ns.argv([sys.executable, "-m", "sharedfs_agent", *args, "--config", str(config)])
            ).returncode

        step("the control plane attaches it (file source: filesystems.json)")
        doc = {"filesystems": [{"name": "projecthome", "fs_type": "glusterfs", "export": export,
                                "mount_point": f"{BASE}/mnt/projecthome", "mount_options": ["acl"]}]}  # fmt: skip
        (BASE / "filesystems.json").write_text(json.dumps(doc, indent=1))
        print((BASE / "filesystems.json").read_text())
        agent("plan")
        step("one reconcile pass, inside a private mount namespace")
        rc = agent("once")
        print(f"exit status {rc}")
        agent("status")
        step("mounted for real: mountinfo, fstab, a file written through FUSE lands on the brick")
        mp = f"{BASE}/mnt/projecthome"
        print(f"{mp}: {ns.mounts()[mp].fstype} {ns.mounts()[mp].source}")
        print((BASE / "fstab").read_text(), end="")
        ns.write(f"{mp}/hello.txt", "hello from the instance\n")
        print(f"brick has hello.txt: {(server.volumes['projecthome'] / 'hello.txt').read_text()!r}")

        step("the control plane detaches it")
        (BASE / "filesystems.json").write_text(json.dumps({"filesystems": []}))
        rc2 = agent("once")
        print(f"exit status {rc2}; still mounted: {mp in ns.mounts()}")
        print((BASE / "fstab").read_text(), end="")
        agent("status")
        ok = rc == 0 and rc2 == 0 and mp not in ns.mounts()
    finally:
        step("clean up: unmount, stop glusterd, remove the demo directory")
        if ns is not None:
            ns.close(str(BASE))
        server.stop()
        shutil.rmtree(BASE, ignore_errors=True)
    print("\ndemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
