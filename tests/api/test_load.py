"""Under load and under kill -9, with the real glusterfs driver: no 5xx, and rows, views and auth.allow agree exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import threading
import time
from collections import defaultdict
from typing import Dict, List, Set

import pytest
import requests
from sqlalchemy import select

from devtools.apiserver import ApiServer
from sharedfs_api import db
from sharedfs_api.representations import agent_document, agent_entry
from sharedfs_api.services.access import Access

pytestmark = [pytest.mark.root, pytest.mark.gluster]

CLIENTS = int(os.environ.get("SHAREDFS_LOAD_CLIENTS", "40"))
SECONDS = float(os.environ.get("SHAREDFS_LOAD_SECONDS", "30"))
KILLS = int(os.environ.get("SHAREDFS_KILLS", "40"))
PROJECTS = ("lp1", "lp2", "lp3")
INSTANCES = [(p, f"{p}-vm{n}") for p in PROJECTS for n in range(4)]
NAMES = [(p, f"{p}-fs{n}") for p in PROJECTS for n in range(6)]



def volume_acls(glusterd, brick_root) -> Dict[str, Set[str]]:
    """Each volume with its bricks in brick_root, and its auth.allow as a set (0.0.0.0: nobody)."""
    acls: Dict[str, Set[str]] = {}
    name, ours = None, False
    for line in glusterd.gluster("volume", "info", "all").stdout.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "Volume Name":
            name, ours = value, False
        elif key.startswith("Brick") and key[5:].isdigit():
            ours = os.path.dirname(value.rpartition(":")[2]) == str(brick_root)
            if ours:
                acls[name] = set()
        elif key == "auth.allow" and ours:
            acls[name] = set(value.split(",")) - {"0.0.0.0"}
    return acls


def settle(server: ApiServer, admin: str, timeout: float = 240.0) -> None:
    """Until no filesystem of the load projects is creating or deleting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [e["status"] for p in PROJECTS
                    for e in server.call("GET", f"/v1.1/{p}/os-filesystem", admin).json()["fs_entries"]]  # fmt: skip
        if not {"creating", "deleting"} & set(statuses):
            return
        time.sleep(0.5)
    raise AssertionError("jobs still pending")


def check_agreement(url: str, server: ApiServer, admin: str, glusterd, brick_root) -> Set[str]:
    """Rows, grants, every instance's view and the volumes' auth.allow agree exactly; returns the
    filesystems that are available (so a caller can insist that the ACL check compared something)."""
    engine = db.make_engine(url)
    sessions = db.make_sessions(engine)
    acls = volume_acls(glusterd, brick_root)
    with sessions() as session:
        rows = list(session.scalars(select(db.Filesystem).where(db.Filesystem.project.in_(PROJECTS))))
        assert not [fs.name for fs in rows if fs.status in ("creating", "deleting")]
        with_volume = {fs.name for fs in rows if fs.status == "available"}
        assert set(acls) == with_volume, "volumes and rows differ"  # no orphan, no row without its volume
        assert all(fs.export == "" for fs in rows if fs.status == "error")
        for fs in rows:
            if fs.status != "available":
                continue
            wanted = Access.wanted(session, fs)
            granted = set(session.scalars(select(db.Grant.address).where(db.Grant.filesystem_id == fs.id)))
            assert wanted == granted == acls[fs.name], fs.name
        instances = list(session.scalars(select(db.Instance).where(db.Instance.project.in_(PROJECTS))))
        for instance in instances:
            expected = [fs for fs in rows if fs.status == "available" and fs.project == instance.project and (
                fs.scope == "project" or instance in Access.members(session, fs))]  # fmt: skip
            body = server.call("GET", f"/v1.1/{instance.project}/os-instances/{instance.id}/filesystems", admin)
            assert body.content == agent_document([agent_entry(fs) for fs in expected]), instance.id
    engine.dispose()
    return with_volume


def client(urls: List[str], admin: str, stop: float, results: list, seed: int) -> None:
    rng = random.Random(seed)
    sessions = {url: requests.Session() for url in urls}
    for session in sessions.values():
        session.headers["X-Auth-Token"] = admin
    last_used = dict.fromkeys(urls, time.monotonic())
    while time.monotonic() < stop:
        base = rng.choice(urls)
        # A connection left idle (while this client spoke to the other server) is dropped before
        # the server's keep-alive timeout (10 s) could close it under a request being sent: that
        # race is HTTP's, and a well-behaved client, like this one, keeps its idle timeout shorter.
        session = sessions[base]
        if time.monotonic() - last_used[base] > 5:
            session.close()
        project, name = rng.choice(NAMES)
        _, instance = rng.choice([i for i in INSTANCES if i[0] == project])
        roll = rng.random()
        if roll < 0.2:
            method, path = "PUT", f"/v1.1/{project}/os-filesystem/{name}"
            body = {"fs_entry": {"size": "64Mb", "scope": "project" if name.endswith(("0", "1")) else "instance"}}
        elif roll < 0.35:
            method, path, body = "DELETE", f"/v1.1/{project}/os-filesystem/{name}", None
        elif roll < 0.6:
            method, path, body = "PUT", f"/v1.1/{project}/os-filesystem/{name}/instances/{instance}", None
        elif roll < 0.8:
            method, path, body = "DELETE", f"/v1.1/{project}/os-filesystem/{name}/instances/{instance}", None
        else:
            n = PROJECTS.index(project)
            addresses = rng.sample([f"10.60.{n}.{k}" for k in range(1, 30)], rng.randint(0, 2))
            method, path, body = "PUT", f"/v1.1/{project}/os-instances/{instance}", {"instance": {"addresses": addresses}}
        started = time.monotonic()
        try:
            code = session.request(method, base + path, json=body, timeout=120).status_code
        except requests.RequestException as e:
            code = f"{type(e).__name__}: {method} {base}{path}: {e}"  # the whole story in the failure
        last_used[base] = time.monotonic()
        results.append((code, last_used[base] - started))


def load(urls: List[str], admin: str, label: str) -> None:
    results: list = []
    stop = time.monotonic() + SECONDS
    threads = [threading.Thread(target=client, args=(urls, admin, stop, results, n)) for n in range(CLIENTS)]
    started = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    elapsed = time.monotonic() - started
    latencies = sorted(lat for _, lat in results)
    p = statistics.quantiles(latencies, n=100)
    codes = defaultdict(int)
    for code, _ in results:
        codes[code] += 1
    print(f"\nload {label}: {CLIENTS} clients x {SECONDS:.0f} s: {len(results)} requests, "
          f"{len(results) / elapsed:.0f}/s; latency p50 {p[49] * 1000:.0f} ms, p95 {p[94] * 1000:.0f} ms, "
          f"p99 {p[98] * 1000:.0f} ms; codes {dict(sorted(codes.items(), key=str))}")  # fmt: skip
    bad = {code: n for code, n in codes.items() if not isinstance(code, int) or code >= 500}
    assert bad == {}, f"server errors or dropped connections: {bad}"


def prepare(server: ApiServer) -> str:
    admin = server.token("admin")
    for project, instance in INSTANCES:
        n = PROJECTS.index(project)
        answer = server.call("PUT", f"/v1.1/{project}/os-instances/{instance}", admin,
                             json={"instance": {"addresses": [f"10.60.{n}.{len(instance)}"]}})  # fmt: skip
        assert answer.status_code in (200, 201), answer.text
    return admin


def create_anchor(server: ApiServer, admin: str) -> None:
    """One volume the churn never names: whatever the churn leaves (a delete wins over a create, so
    most names end gone), it lives through, and its access list (lp1's instances, whose addresses
    the load changes) is compared with what the rows want, not only empty sets."""
    anchor = server.call("PUT", "/v1.1/lp1/os-filesystem/lp1-anchor", admin,
                         json={"fs_entry": {"size": "64Mb", "scope": "project"}})  # fmt: skip
    assert anchor.status_code in (201, 202), anchor.text
    settle(server, admin)


def clean_up(server: ApiServer, admin: str) -> None:
    for project, name in [*NAMES, ("lp1", "lp1-anchor")]:
        server.call("DELETE", f"/v1.1/{project}/os-filesystem/{name}", admin)
    settle(server, admin)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_load_mixed_writes_then_everything_agrees(database, request, glusterd, workdir):
    base = workdir / f"load-{database}"
    bricks = base / "bricks"
    options = glusterd.driver_options(bricks, quota=False)
    if database == "sqlite":
        url = None
        servers = [ApiServer(base / "a", driver="glusterfs", driver_opts=options)]
    else:
        url = request.getfixturevalue("postgres").create_database("load")
        servers = [ApiServer(base / n, db_url=url, driver="glusterfs", driver_opts=options) for n in "ab"]
    url = url or servers[0].db_url
    for server in servers:
        server.start()
    try:
        admin = prepare(servers[0])
        create_anchor(servers[0], admin)
        load([s.url for s in servers], admin, database + (" (2 processes)" if len(servers) > 1 else ""))
        settle(servers[0], admin)
        assert "lp1-anchor" in check_agreement(url, servers[-1], admin, glusterd, bricks)
        clean_up(servers[0], admin)
        assert volume_acls(glusterd, bricks) == {}
    finally:
        for server in servers:
            server.stop()


def schedstat(pid: int):
    """A process's seconds on a CPU and waiting on a run queue, so far (/proc/PID/schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        on_cpu, waiting, _ = (int(n) for n in f.read().split())
    return on_cpu / 1e9, waiting / 1e9


def test_kill_9_during_creates_deletes_and_connects_then_one_reconcile_repairs(glusterd, workdir):
    base = workdir / "kill9"
    bricks = base / "bricks"
    # Every start (41), as every test's, forks from the suite's process that has imported the server
    # once (devtools/apizygote.py): a new process all the same, from argument parsing on.
    server = ApiServer(base, driver="glusterfs", driver_opts=glusterd.driver_options(bricks, quota=False))
    server.start()
    admin = prepare(server)
    create_anchor(server, admin)  # it lives through every kill too
    rng = random.Random(9)
    stop_flag = threading.Event()

    def churn(seed: int) -> None:
        local = random.Random(seed)
        while not stop_flag.is_set():
            project, name = local.choice(NAMES[:9])
            _, instance = local.choice([i for i in INSTANCES if i[0] == project])
            calls = [
                ("PUT", f"/v1.1/{project}/os-filesystem/{name}", {"fs_entry": {"size": "64Mb", "scope": "project"}}),
                ("DELETE", f"/v1.1/{project}/os-filesystem/{name}", None),
                ("PUT", f"/v1.1/{project}/os-filesystem/{name}/instances/{instance}", None),
            ]
            method, path, body = local.choice(calls)
            try:
                server.call(method, path, admin, json=body, timeout=5)
            except requests.RequestException:
                time.sleep(0.05)  # the server is down: it comes back

    churners = [threading.Thread(target=churn, args=(n,)) for n in range(6)]
    [t.start() for t in churners]
    restarts = []  # per restart: seconds until it answered, and the server's CPU and run-queue seconds by then
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            server.log.close()
            server.proc = None
            begun = time.monotonic()
            server.start()
            restarts.append((time.monotonic() - begun, *schedstat(server.proc.pid)))
    finally:
        stop_flag.set()
        [t.join() for t in churners]
        server.stop(signal.SIGKILL)
    # What the last process left: one reconcile (the CLI runs what a starting server's worker does).
    time.sleep(1)  # gluster commands the killed server had started run to their end
    out = server.cli("reconcile", "--driver", "glusterfs",
                     *[f"--driver-opt={k}={v}" for k, v in glusterd.driver_options(bricks, quota=False).items()])  # fmt: skip
    print("\nkill -9 x", KILLS, "then reconcile:", json.dumps(out.splitlines()[-3:]))
    wall, cpu, queued = (statistics.median(column) for column in zip(*restarts))
    print(f"restart until answering: median {wall:.2f}s (server CPU {cpu:.2f}s, waiting for a core {queued:.2f}s), "
          f"longest {max(r[0] for r in restarts):.2f}s")  # fmt: skip
    server.start()
    try:
        assert "lp1-anchor" in check_agreement(server.db_url, server, admin, glusterd, bricks)
        clean_up(server, admin)
    finally:
        server.stop()
