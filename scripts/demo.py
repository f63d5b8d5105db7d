"""The whole story on one machine: sharedfs-api + GlusterFS + the agent daemon, attach to detach.

Runs as root (scripts/demo.sh sets everything up first). glusterd runs with a private state
directory and mount namespace; sharedfs-api (SQLite, glusterfs driver) on 127.0.0.1; the agent
daemon in a private mount namespace with its own fstab, so the host's mount table and /etc/fstab
are never touched. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.stack import LocalStack  # noqa: E402
from devtools.workspace import workspace  # noqa: E402

BASE = workspace() / "demo"
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
    stack = LocalStack(BASE, project=PROJECT, instance=INSTANCE)
    ok = False
    try:
        step(
            "start a single-node GlusterFS (private state, 127.0.0.1), sharedfs-api with the glusterfs driver, "
            f"and the agent daemon as instance {INSTANCE} of project {PROJECT}, in a private mount namespace"
        )
        stack.start()
        print(f"sharedfs-api on {stack.api.url} (database {stack.api.db_url})")

        def call(method: str, path: str, **kw):
            response = stack.call(method, path, **kw)
            body = f" {json.dumps(kw['json'])}" if "json" in kw else ""
            print(f"$ {method} {path}{body}\n  -> {response.status_code} {response.text[:300]}")
            return response

        def agent_status() -> None:
            print("$ sharedfs-agent status", flush=True)
            subprocess.run(stack.ns.argv(stack.agent_command("status")))

        step("create a project-scope filesystem: every instance of the project gets it")
        call(
            "PUT",
            f"/v1.1/{PROJECT}/os-filesystem/projecthome",
            json={"fs_entry": {"size": "1Gb", "scope": "project", "mount_point": stack.mount_point("projecthome")}},
        )
        start = time.monotonic()
        assert wait_for(lambda: stack.mounted("projecthome")), "not mounted"
        print(f"mounted on the instance {time.monotonic() - start:.2f}s after the API answered")
        assert wait_for(lambda: stack.reported("projecthome") == "mounted"), "not reported"
        call("GET", f"/v1.1/{PROJECT}/os-filesystem/projecthome/instances")
        agent_status()
        stack.ns.write(stack.mount_point("projecthome") + "/hello.txt", "hello from the instance\n")
        print(f"brick has hello.txt: {(BASE / 'bricks' / 'projecthome' / 'hello.txt').read_text()!r}")
        print(stack.fstab.read_text(), end="")

        step("an instance-scope filesystem: connect, then disconnect")
        call(
            "PUT",
            f"/v1.1/{PROJECT}/os-filesystem/scratch",
            json={"fs_entry": {"size": "512Mb", "mount_point": stack.mount_point("scratch")}},
        )
        call("PUT", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances/{INSTANCE}")
        assert wait_for(lambda: stack.mounted("scratch")) and wait_for(lambda: stack.reported("scratch") == "mounted")
        print("scratch mounted and reported")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances/{INSTANCE}")
        assert wait_for(lambda: not stack.mounted("scratch"))
        assert wait_for(lambda: stack.reported("scratch") == "unmounted")
        call("GET", f"/v1.1/{PROJECT}/os-filesystem/scratch/instances")

        step("delete both filesystems: unmounted, fstab lines gone, volumes destroyed")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/projecthome")
        call("DELETE", f"/v1.1/{PROJECT}/os-filesystem/scratch")
        assert wait_for(lambda: not stack.mounted("projecthome")), "still mounted"
        agent_status()
        print(stack.fstab.read_text(), end="")
        print(f"volumes left: {stack.glusterd.gluster('volume', 'list').stdout.strip() or 'none'}")
        lines = stack.log_path.read_text().splitlines()[-12:]
        print("\nagent log:\n" + "".join(f"  {line}\n" for line in lines), end="")
        ok = True
    finally:
        step("clean up: stop the agent (its mounts stay, by design, so unmount them), the API, glusterd")
        stack.stop()
        shutil.rmtree(BASE, ignore_errors=True)
    print("\ndemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
