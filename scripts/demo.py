"""The whole story on one machine: sharedfs-api + GlusterFS + the agent daemon, attach to detach.

Runs as root (scripts/demo.sh sets everything up first). glusterd runs with a private state
directory and mount namespace; sharedfs-api (SQLite, glusterfs driver) on 127.0.0.1; the agent
daemon in a private mount namespace with its own fstab, so the host's mount table and /etc/fstab
are never touched. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.apiserver import ApiServer  # noqa: E402
from devtools.gluster import Glusterd  # noqa: E402
from devtools.namespace import MountNamespace  # noqa: E402

BASE = REPO / ".work" / "demo"
PROJECT, INSTANCE = "demo", "demo-vm"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def main() -> int:
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    server, api, ns, agent, log = Glusterd(BASE / "glusterd"), None, None, None, None
    ok = False
    try:
        step("start a single-node GlusterFS (private state, 127.0.0.1) and sharedfs-api with the glusterfs driver")
        server.start()
        api = ApiServer(BASE / "api", driver="glusterfs", driver_opts={
            "brick_root": str(BASE / "bricks"), "brick_host": server.host,
            "gluster_command": " ".join(server.command),
        }).start()  # fmt: skip
        admin = api.token("admin")
        print(f"sharedfs-api on {api.url} (database {api.db_url})")

        def call(method: str, path: str, **kw):
            response = api.call(method, path, admin, **kw)
            body = f" {json.dumps(kw['json'])}" if "json" in kw else ""
            print(f"$ {method} {path}{body}\n  -> {response.status_code} {response.text[:300]}")
            return response

        step(
            f"this machine becomes instance {INSTANCE} of project {PROJECT}: the agent daemon, in a private mount namespace"
        )
        token_file = BASE / "token"
        token_file.write_text(api.token("instance", PROJECT, INSTANCE) + "\n")
        os.chmod(token_file, 0o600)
        (BASE / "fstab").write_text(
            "# the instance's own fstab: the agent keeps every byte of this\nUUID=0a1b / ext4 defaults 0 1\n"
        )
        config = BASE / "agent.conf"
        config.write_text(
            f"[agent]\nsource = api\nstate_dir = {BASE}/state\nfstab = {BASE}/fstab\nallowed_roots = {BASE}/mnt\n"
            f"[api]\nurl = {api.url}\ntoken_file = {token_file}\ninstance_id = {INSTANCE}\nproject = {PROJECT}\n"
        )
        ns = MountNamespace()
        log = open(BASE / "agent.log", "w+")  # noqa: SIM115 - closed below
        agent = ns.popen([sys.executable, "-m", "sharedfs_agent", "run", "--config", str(config)],
                         stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def mounted(name: str) -> bool:
            return str(BASE / "mnt" / name) in ns.mounts()

        def reported(name: str):
            rows = api.call("GET", f"/v1.1/{PROJECT}/os-filesystem/{name}/instances", admin).json()["instances"]
            return {r["id"]: r["mount_state"] for r in rows}.get(INSTANCE)

        def agent_status() -> None:
            print("$ sharedfs-agent status", flush=True)
            subprocess.run(ns.argv([sys.executable, "-m", "sharedfs_agent", "status", "--config", str(config)]))

        step("create a project-scope filesystem: every instance of the project gets it")
        call(
            "PUT",
            f"/v1.1/{PROJECT}/os-filesystem/projecthome",
            json={"fs_entry": {"size": "1Gb", "scope": "project", "mount_point": str(BASE / "mnt" / "projecthome")}},
        )
        start = time.monotonic()
        assert wait_for(lambda: mounted("projecthome")), "not mounted"
        print(f"mounted on the instance {time.monotonic() - start:.2f}s after the API answered")
        assert wait_for(lambda: reported("projecthome") == "mounted"), "not reported"
        call("GET", f"/v1.1/{PROJECT}/os-filesystem/projecthome/instances")
        agent_status()
        ns.write(str(BASE / "mnt" / "projecthome" / "hello.txt"), "hello from the instance\n")
        print(f"brick has hello.txt: {(BASE / 'bricks' / 'projecthome' / 'hello.txt').read_text()!r}")
        print((BASE / "fstab").read_text(), end="")

        step("an instance-scope filesystem: connect, then disconnect")
        call(
            "PUT",
            f"/v1.1/{PROJECT}/os-filesystem/scratch",
            json={"fs_entry": {"size": "512Mb", "mount_point": str(BASE / "mnt" / "scratch")}},
        )
        call("PUT", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances/{INSTANCE}")
        assert wait_for(lambda: mounted("scratch")) and wait_for(lambda: reported("scratch") == "mounted")
        print("scratch mounted and reported")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances/{INSTANCE}")
        assert wait_for(lambda: not mounted("scratch")) and wait_for(lambda: reported("scratch") == "unmounted")
        call("GET", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances")

        step("delete both filesystems: unmounted, fstab lines gone, volumes destroyed")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/projecthome")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/scratch")
        assert wait_for(lambda: not mounted("projecthome")), "still mounted"
        agent_status()
        print((BASE / "fstab").read_text(), end="")
        print(f"volumes left: {server.gluster('volume', 'list').stdout.strip() or 'none'}")
        log.seek(0)
        print("\nagent log:\n" + "".join(f"  {line}" for line in log.readlines()[-12:]), end="")
        ok = True
    finally:
        step(
            "clean up: stop the agent (mounts stay by design, so unmount), the API, glusterd; remove the demo directory"
        )
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(20)
        if ns is not None:
            ns.close(str(BASE))
        if api is not None:
            api.stop()
        server.stop()
        if log is not None:
            log.close()
        shutil.rmtree(BASE, ignore_errors=True)
    print("\ndemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
