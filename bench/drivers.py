"""Benchmark: each API driver's create -> available and connect -> mountable, medians of ROUNDS (default 5), in one run.

Run as root: .venv/bin/python bench/drivers.py [--rounds N] [glusterfs] [cephfs]   (default: both)

Each driver against its real storage, started here: a glusterd (bricks on this disk, a client in
a network namespace with its own address, so auth.allow is what lets it in) and a throw-away
single-node Ceph (devtools/ceph.py; the agent mounts through ceph-fuse in a private mount
namespace with the key from its own view). Each round creates an instance-scope filesystem of
1 GiB and times the PUT until it is `available`; then connects the instance and times from the
PUT until a client can mount it and write (GlusterFS: a fresh mount and write from the
namespace, which waits 0.5 s to see a refused client torn down; CephFS: until the instance's
view carries its key, and until one `sharedfs-agent once` has mounted it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.apiserver import ApiServer  # noqa: E402
from devtools.workspace import workspace  # noqa: E402

# A driver's set-up yields the API server and connected(name, admin): from the connect's PUT on,
# the named steps each with its time since the PUT.
Connected = Callable[[str, str], Dict[str, float]]


@contextmanager
def glusterfs(base: Path) -> Iterator[Tuple[ApiServer, Connected]]:
    from devtools.gluster import Glusterd
    from devtools.netns import NetNamespace, mount_and_write

    glusterd = Glusterd(base / "glusterd", bind="0.0.0.0")
    glusterd.start()
    ns = NetNamespace("sfsbench", "10.213.81.0", base, {glusterd.host: "10.213.81.1"})
    server = ApiServer(base / "api", driver="glusterfs", driver_opts=glusterd.driver_options(base / "bricks")).start()
    try:
        admin = server.token("admin")
        server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": [ns.address]}})

        def connected(name: str, admin: str) -> Dict[str, float]:
            start = time.monotonic()
            assert server.call("PUT", f"/v1.1/p1/os-filesystem/{name}/instances/vm1", admin).status_code == 201
            export = server.call("GET", f"/v1.1/p1/os-filesystem/{name}", admin).json()["fs_entry"]["export"]
            while not mount_and_write(ns, export, str(base / "mnt"), "bench")[0]:
                time.sleep(0.05)
            return {"connect -> mounted and written (a fresh client)": time.monotonic() - start}

        yield server, connected
    finally:
        server.stop()
        ns.close()
        glusterd.stop()


@contextmanager
def cephfs(base: Path) -> Iterator[Tuple[ApiServer, Connected]]:
    from devtools.ceph import CephCluster
    from tests.integration.conftest import Agent

    cluster = CephCluster(base / "ceph").start()
    server = ApiServer(base / "api", driver="cephfs", driver_opts={
        "ceph_command": f"ip netns exec {cluster.netns} ceph", "conf": str(cluster.conf), "client": "fuse"}).start()  # fmt: skip
    ns = cluster.mount_namespace()
    try:
        admin = server.token("admin")
        server.call("PUT", "/v1.1/p1/os-instances/vm1", admin, json={"instance": {"addresses": []}})
        token = server.token("instance", "p1", "vm1")
        agent = Agent(base / "agent", ns, secret_dir=base / "agent" / "secrets")

        def connected(name: str, admin: str) -> Dict[str, float]:
            start = time.monotonic()
            assert server.call("PUT", f"/v1.1/p1/os-filesystem/{name}/instances/vm1", admin).status_code == 201
            while True:
                entries = server.call("GET", "/v1.1/p1/os-instances/vm1/filesystems", token).json()["filesystems"]
                if any("secret" in e for e in entries):
                    break
                time.sleep(0.01)
            keyed = time.monotonic() - start
            agent.desire(*[dict(e, mount_point=agent.mp(e["name"])) for e in entries])
            result = agent.once()
            assert result.returncode == 0 and agent.mounted(name) is not None, result.stderr
            mounted = time.monotonic() - start
            agent.desire()
            agent.once()
            return {"connect -> key in the instance's view": keyed, "connect -> mounted (ceph-fuse, agent)": mounted}

        yield server, connected
    finally:
        ns.close(str(base))
        server.stop()
        cluster.stop()


DRIVERS = {"glusterfs": glusterfs, "cephfs": cephfs}


def measure(driver: str, rounds: int) -> Dict[str, List[float]]:
    base = Path(tempfile.mkdtemp(prefix=f"{driver}-bench-", dir=workspace()))  # not /tmp: the agent refuses it
    figures: Dict[str, List[float]] = {"create -> available": []}
    try:
        with DRIVERS[driver](base) as (server, connected):
            admin = server.token("admin")
            for n in range(rounds):
                name = f"bench{n}"
                start = time.monotonic()
                server.call("PUT", f"/v1.1/p1/os-filesystem/{name}", admin, json={"fs_entry": {"size": "1Gb"}})
                assert server.settled(admin, "p1", name)["status"] == "available"
                figures["create -> available"].append(time.monotonic() - start)
                for label, seconds in connected(name, admin).items():
                    figures.setdefault(label, []).append(seconds)
                server.call("DELETE", f"/v1.1/p1/os-filesystem/{name}", admin)
                assert server.settled(admin, "p1", name) is None
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("drivers", nargs="*", metavar="DRIVER", help=f"of {', '.join(sorted(DRIVERS))} (default: all)")
    args = parser.parse_args()
    unknown = [d for d in args.drivers if d not in DRIVERS]
    if unknown:
        parser.error(f"no such driver: {', '.join(unknown)}")
    for driver in args.drivers or sorted(DRIVERS):
        for label, values in measure(driver, args.rounds).items():
            print(f"{driver:10} {label}: median {statistics.median(values):.2f}s  "
                  f"({', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
