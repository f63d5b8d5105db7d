"""Benchmark: N agents long-polling one sharedfs-api process; one project-scope filesystem is created.

Run: .venv/bin/python bench/fanout.py [N ...]                  (default: 1000 2000 5000)
     .venv/bin/python bench/fanout.py --outage SECONDS [N ...]   the return after an outage

For each N: a fresh server (SQLite, static driver) with N registered instances of one project,
each with its own instance token; a client process holds N long-polls (?wait=120, If-None-Match);
the server's CPU is measured while they are all held (idle), then one project-scope filesystem
is created through the API and every client records when its answer arrived. Printed: the time
from sending the create until every client had the new set (and the median), and idle CPU in %
of one core. Goals: all notified within 2 s; idle CPU < 5 %. Clients run in their own process
(CLOCK_MONOTONIC is shared by all processes of a machine, so their timestamps compare).

With --outage: every client behaves as the agent's watcher (its Backoff: full jitter, capped at
BACKOFF_CAP). Once all hold their polls the server is killed, stays down SECONDS, comes back, and
one project-scope filesystem is created at once. Printed: when every client had it, counted
from the server's return (goal 15 s), the peak reconnect rate (requests a second), and the
server's latency for those requests (median, 99th percentile). The client process raises its
open-file limit to the hard limit (one socket per client).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from devtools.apiserver import ApiServer  # noqa: E402
from sharedfs_api import db  # noqa: E402
from sharedfs_api.auth import hash_token, new_token  # noqa: E402

PROJECT = "bench"


def seed(url: str, n: int) -> list:
    """N instances and their tokens, written straight into the database (fast set-up)."""
    db.upgrade(url)
    tokens = [new_token() for _ in range(n)]
    with db.make_sessions(db.make_engine(url))() as session:
        session.add_all(db.Instance(id=f"vm{i}", project=PROJECT, addresses_json="[]") for i in range(n))
        session.add_all(db.Token(sha256=hash_token(t), role="instance", project=PROJECT, instance_id=f"vm{i}")
                        for i, t in enumerate(tokens))  # fmt: skip
        session.commit()
    return tokens


async def _client(port: int, instance: str, token: str, ready: asyncio.Event, go: list, results: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def get(extra: str) -> tuple:
        path = f"/v1.1/{PROJECT}/os-instances/{instance}/filesystems{extra[0]}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Auth-Token: {token}\r\n{extra[1]}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        return status, headers.get(b"etag", b"").decode(), body

    _, etag, _ = await get(("", ""))
    waiting = asyncio.ensure_future(get(("?wait=120", f"If-None-Match: {etag}\r\n")))
    ready.set()
    status, _, body = await waiting
    results.append((time.monotonic(), status, b"fanout-new" in body))
    writer.close()


async def _clients(port: int, tokens: list) -> None:
    results: list = []
    readies = [asyncio.Event() for _ in tokens]
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(asyncio.ensure_future(_client(port, f"vm{i}", token, readies[i], [], results)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # do not overflow the listen backlog
    for event in readies:
        await event.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps([(t, s, ok) for t, s, ok in results]), flush=True)


async def _returning_agent(port: int, instance: str, token: str, ready: asyncio.Event, results: list) -> None:
    """The agent's watcher, reduced: long-poll with If-None-Match, the agent's Backoff on errors;
    ends when the new filesystem arrives, with (request sent, answer read)."""
    from sharedfs_agent.daemon import Backoff

    backoff, etag = Backoff(), ""
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            try:
                query = "?wait=120" if etag else ""
                sent = time.monotonic()
                writer.write(f"GET /v1.1/{PROJECT}/os-instances/{instance}/filesystems{query} HTTP/1.1\r\n"
                             f"Host: bench\r\nX-Auth-Token: {token}\r\nIf-None-Match: {etag}\r\n\r\n".encode())  # fmt: skip
                if etag:
                    ready.set()
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {k.lower(): v for k, v in (line.split(b": ", 1) for line in head.split(b"\r\n")[1:]
                                                      if b": " in line)}  # fmt: skip
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                answered = time.monotonic()
            finally:
                writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await asyncio.sleep(backoff.next())
            continue
        backoff.reset()
        if b"fanout-new" in body:
            results.append((sent, answered))
            return
        etag = headers.get(b"etag", b"").decode() or etag


async def _returning(port: int, tokens: list) -> None:
    results: list = []
    readies = [asyncio.Event() for _ in tokens]
    tasks = []
    for i, token in enumerate(tokens):
        tasks.append(asyncio.ensure_future(_returning_agent(port, f"vm{i}", token, readies[i], results)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # do not overflow the listen backlog
    for event in readies:
        await event.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps(results), flush=True)


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_main(port: int, tokens_file: str, outage: bool = False) -> None:
    _raise_fd_limit()
    tokens = json.loads(Path(tokens_file).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_returning(port, tokens) if outage else _clients(port, tokens))


def run_outage(n: int, base: Path, down: float) -> dict:
    """N agents holding polls; the server killed, down `down` s, back; a create at once."""
    import signal

    from sharedfs_agent.daemon import BACKOFF_CAP

    work = base / f"outage{n}"
    work.mkdir()
    url = f"sqlite:///{work / 'api.db'}"
    tokens = seed(url, n)
    (work / "tokens.json").write_text(json.dumps(tokens))
    server = ApiServer(work, db_url=url).start()
    admin = server.token("admin")
    clients = subprocess.Popen([sys.executable, __file__, "--outage-client", str(server.port), str(work / "tokens.json")],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert clients.stdout.readline().strip() == "ready"
        time.sleep(2)
        server.stop(signal.SIGKILL)  # every held poll is cut at once, as in a crash
        time.sleep(down)
        server = ApiServer(work, db_url=url, port=server.port).start()
        back = time.monotonic()
        proc = psutil.Process(server.proc.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        response = server.call("PUT", f"/v1.1/{PROJECT}/os-filesystem/fanout-new", admin,
                               json={"fs_entry": {"size": "1Gb", "scope": "project", "export": "gl1:/v",
                                                  "fs_type": "glusterfs"}})  # fmt: skip
        assert response.status_code == 201, response.text
        results = json.loads(clients.stdout.readline())
        storm = time.monotonic() - back
        cpu = (sum(proc.cpu_times()[:2]) - cpu0) / storm * 100
        clients.wait(60)
    finally:
        if clients.poll() is None:
            clients.kill()
        server.stop()
    assert len(results) == n, "some client never got the change"
    converged = sorted(answered - back for _, answered in results)
    latency = sorted(answered - sent for sent, answered in results)
    per_second: dict = {}
    for sent, _ in results:
        per_second[int(sent - back)] = per_second.get(int(sent - back), 0) + 1
    return {"n": n, "down": down, "cap": BACKOFF_CAP, "all": converged[-1], "median": converged[len(converged) // 2],
            "peak_rate": max(per_second.values()), "latency_p50": latency[len(latency) // 2],
            "latency_p99": latency[int(len(latency) * 0.99)], "cpu": cpu}  # fmt: skip


def main_outage(down: float, sizes) -> None:
    base = Path(tempfile.mkdtemp(prefix="sharedfs-outage-"))
    print(f"return after an outage: N agents (the agent's Backoff), the server killed, down {down:.0f} s, back, "
          "a project-scope create at once (one server process, SQLite)")  # fmt: skip
    try:
        for n in sizes:
            r = run_outage(n, base, down)
            print(f"  N={r['n']:5}: every agent had it {r['all']:5.1f} s after the server was back (median "
                  f"{r['median']:4.1f} s; goal <= 15 s; backoff cap {r['cap']:.0f} s)   peak {r['peak_rate']} requests/s,"
                  f" server latency p50 {r['latency_p50'] * 1000:.0f} ms p99 {r['latency_p99'] * 1000:.0f} ms,"
                  f" server CPU {r['cpu']:.0f} % of a core meanwhile", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(n: int, base: Path) -> dict:
    work = base / f"n{n}"
    work.mkdir()
    url = f"sqlite:///{work / 'api.db'}"
    tokens = seed(url, n)
    (work / "tokens.json").write_text(json.dumps(tokens))
    server = ApiServer(work, db_url=url).start()
    admin = server.token("admin")
    clients = subprocess.Popen([sys.executable, __file__, "--client", str(server.port), str(work / "tokens.json")],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert clients.stdout.readline().strip() == "ready"
        time.sleep(2)  # let the server settle with every poll held
        proc = psutil.Process(server.proc.pid)
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(10)
        idle = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - wall0) * 100
        sent = time.monotonic()
        response = server.call("PUT", f"/v1.1/{PROJECT}/os-filesystem/fanout-new", admin,
                               json={"fs_entry": {"size": "1Gb", "scope": "project", "export": "gl1:/v",
                                                  "fs_type": "glusterfs"}})  # fmt: skip
        assert response.status_code == 201, response.text
        results = json.loads(clients.stdout.readline())
        clients.wait(60)
    finally:
        if clients.poll() is None:
            clients.kill()
        server.stop()
    delays = sorted(t - sent for t, _, _ in results)
    assert len(results) == n and all(s == 200 and ok for _, s, ok in results), "some client missed the change"
    return {"n": n, "all": delays[-1], "median": delays[len(delays) // 2], "idle_cpu": idle}


def main(sizes) -> None:
    base = Path(tempfile.mkdtemp(prefix="sharedfs-fanout-"))
    print("fanout: N long-polling agents, one project-scope filesystem created (one server process, SQLite)")
    try:
        for n in sizes:
            r = run(n, base)
            print(f"  N={r['n']:5}: all notified {r['all'] * 1000:7.0f} ms after the create was sent (median {r['median'] * 1000:5.0f} ms)"
                  f"   idle server CPU {r['idle_cpu']:4.1f} %   goals: <= 2000 ms, < 5 %", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--outage-client":
        client_main(int(sys.argv[2]), sys.argv[3], outage=True)
    elif len(sys.argv) > 2 and sys.argv[1] == "--outage":
        main_outage(float(sys.argv[2]), [int(a) for a in sys.argv[3:]] or [1000, 5000])
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 2000, 5000])
    os._exit(0)
