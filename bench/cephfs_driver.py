"""Benchmark: the cephfs driver's create -> available and connect -> mountable, medians of ROUNDS (default 5).

Run as root: .venv/bin/python bench/cephfs_driver.py [ROUNDS]

A throw-away single-node Ceph (devtools/ceph.py) and sharedfs-api with the cephfs driver (client
fuse). Each round creates an instance-scope filesystem and times the PUT until it is `available`
(subvolume create + getpath); then connects the instance and times from the PUT until the
instance's own view carries its key (authorize + key read) and until the agent, given that view,
has mounted it through ceph-fuse in a private mount namespace (one `sharedfs-agent once`).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.apiserver import ApiServer  # noqa: E402
from devtools.ceph import CephCluster  # noqa: E402
from devtools.workspace import workspace  # noqa: E402
from tests.integration.conftest import Agent  # noqa: E402


def main(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cephfs-bench-", dir=workspace()))  # not /tmp: the agent refuses it
    cluster = CephCluster(base / "ceph").start()
    server = ApiServer(base / "api", driver="cephfs", driver_opts={
        "ceph_command": f"ip netns exec {cluster.netns} ceph", "conf": str(cluster.conf), "client": "fuse"}).start()  # fmt: skip
    ns = cluster.mount_namespace()
    created, keyed, mountable = [], [], []
    try:
        admin = server.token("admin")
        server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": []}})
        token = server.token("instance", "p1", "vm1")
        agent = Agent(base / "agent", ns, secret_dir=base / "agent" / "secrets")
        for n in range(rounds):
            name = f"bench{n}"
            start = time.monotonic()
            server.call("PUT", f"/v1.1/p1/os-filesystem/{name}", admin,
                        json={"fs_entry": {"size": "1Gb", "mount_point": agent.mp(name)}})  # fmt: skip
            assert server.settled(admin, "p1", name)["status"] == "available"
            created.append(time.monotonic() - start)
            start = time.monotonic()
            assert server.call("PUT", f"/v1.1/p1/os-filesystem/{name}/instances/vm1", admin).status_code == 201
            while True:
                entries = server.call("GET", "/v1.1/p1/os-instances/vm1/filesystems", token).json()["filesystems"]
                if any("secret" in e for e in entries):
                    break
                time.sleep(0.01)
            keyed.append(time.monotonic() - start)
            agent.desire(*entries)
            result = agent.once()
            assert result.returncode == 0 and agent.mounted(name) is not None, result.stderr
            mountable.append(time.monotonic() - start)
            agent.desire()
            agent.once()
            server.call("DELETE", f"/v1.1/p1/os-filesystem/{name}", admin)
            assert server.settled(admin, "p1", name) is None
    finally:
        ns.close(str(base))
        server.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    for label, values in (("create -> available", created), ("connect -> key in the view", keyed),
                          ("connect -> mounted (ceph-fuse)", mountable)):  # fmt: skip
        print(f"{label}: median {statistics.median(values):.2f}s  ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
