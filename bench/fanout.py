"""Benchmark: a fleet of N agents long-polling sharedfs-api (PostgreSQL, two processes); one project-scope create.

Run: .venv/bin/python bench/fanout.py [N ...]                   (default: 1000 5000 20000)
     .venv/bin/python bench/fanout.py --outage SECONDS [N ...]  the return after an outage
     options: --servers K (default 2), --sqlite (one process on SQLite, the old set-up),
              --max-busy N / --max-lag S: the servers' shedding (default 256 and 0, theirs)

For each N: a fresh PostgreSQL (devtools/postgres.py) with N registered instances of one project,
each with its own instance token, and K `sharedfs-api serve` processes on loopback on that
database (a change made through one wakes the others' long-polls by LISTEN/NOTIFY). Agent i talks
to server i mod K, as behind a load balancer. The agents are asyncio clients in their own
processes (at most AGENTS_PER_PROCESS each: one socket per agent, and the per-process open-file
limit is raised to its hard limit with setrlimit), each behaving as the agent's watcher: its
requests on one kept connection (a new one once the server closed it, as httpclient.Kept), the
first without If-None-Match, then ?wait=120 with it; on a refusal
or a 503 the agent's own Backoff (full jitter, capped at BACKOFF_CAP; Retry-After honoured with
jitter). Connections come from 127.0.0.2-127.0.0.65 (SOURCES addresses: one address has some
28,000 ephemeral ports, and every closed connection holds one in TIME_WAIT for 60 s).

Printed per N: the time until every agent held its poll, the servers' CPU while all are held
(idle, % of one core, both processes summed, measured once N connections are open at
the servers and their CPU has settled; and PostgreSQL's), the fan-out (from sending the
create until each agent had the new set: p50, p99, max; and per server, its first and last
agent), and the memory per held poll (the servers' RSS after all hold minus before, divided by
N). Goals: all within 2 s; idle < 5 %.

With --outage: once all hold their polls every server is killed (SIGKILL: every poll cut at
once), stays down SECONDS, and comes back (all started together). One project-scope filesystem
is created while they are down (through another process on the same database, on a port no
agent knows), so each agent's first answer after the return is the new set. Printed: when every agent had it, counted from the servers' return (goal
15 s), the reconnect rate (requests a second: peak and mean), how many were shed (503), and the
servers' latency for the requests of the return (p50, p99). Clients' timestamps compare: every
process of a machine shares CLOCK_MONOTONIC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from devtools.apiserver import ApiServer  # noqa: E402
from devtools.postgres import Postgres  # noqa: E402
from sharedfs_api import db  # noqa: E402
from sharedfs_api.auth import hash_token, new_token  # noqa: E402

PROJECT = "bench"
WAIT = 120  # the long-poll the agents ask for (the server's default --max-wait)
AGENTS_PER_PROCESS = 10_000  # under the usual hard RLIMIT_NOFILE (20,000 here), and one core's worth
SOURCES = 64  # loopback source addresses 127.0.0.2 ... (ephemeral ports are per address)
CREATE = {"fs_entry": {"size": "1Gb", "scope": "project", "export": "gl1:/v", "fs_type": "glusterfs"}}


def seed(url: str, n: int) -> list:
    """N instances and their tokens, written straight into the database (fast set-up)."""
    db.upgrade(url)
    tokens = [new_token() for _ in range(n)]
    engine = db.make_engine(url)
    with db.make_sessions(engine)() as session:
        session.add_all(db.Instance(id=f"vm{i}", project=PROJECT, addresses_json="[]") for i in range(n))
        session.add_all(db.Token(sha256=hash_token(t), role="instance", project=PROJECT, instance_id=f"vm{i}")
                        for i, t in enumerate(tokens))  # fmt: skip
        session.commit()
    engine.dispose()
    return tokens


# --- the agents (client processes) ---------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """The agent's kept-alive connection: requests one after another, each answer read by its
    Content-Length; a bare protocol, not streams, so that 20,000 agents on the server's own two
    cores cost it as little CPU as they can (their share is the bench's, not the server's)."""

    def __init__(self) -> None:
        self.transport, self.buffer, self.answer, self.closed = None, b"", None, False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep or self.answer is None or self.answer.done():
            return
        from sharedfs_agent.httpclient import Headers

        headers = Headers()
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            dict.__setitem__(headers, name.strip().lower(), value.strip())
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return
        self.buffer = rest[length:]
        self.answer.set_result((int(head.split(b" ", 2)[1]), headers, rest[:length]))

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionResetError("the connection closed before a whole answer"))

    async def exchange(self, request: bytes) -> tuple:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer


async def _exchange(connection, port: int, source: str, path: str, token: str, etag: str) -> tuple:
    """One request as the agent sends it, on its kept connection (a new one when it has none):
    (connection, status, headers, body); OSError if no whole answer came."""
    loop = asyncio.get_running_loop()
    request = (f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Auth-Token: {token}\r\n"
               f"{f'If-None-Match: {etag}' + chr(13) + chr(10) if etag else ''}\r\n").encode()  # fmt: skip
    reused = connection is not None and not connection.closed
    if not reused:
        _, connection = await loop.create_connection(_Connection, "127.0.0.1", port, local_addr=(source, 0))
    try:
        status, headers, body = await connection.exchange(request)
    except ConnectionResetError:
        if not reused or connection.buffer:
            raise
        # Closed by the server before any byte of an answer: once more on a new connection, as Kept does.
        _, connection = await loop.create_connection(_Connection, "127.0.0.1", port, local_addr=(source, 0))
        status, headers, body = await connection.exchange(request)
    if headers.get("connection", "").lower() == "close":
        connection.transport.close()
        connection = None
    return connection, status, headers, body


async def _agent(port: int, index: int, token: str, ready: asyncio.Event, log: list) -> float:
    """The agent's watcher, reduced: long-poll with If-None-Match, its Backoff on errors and
    503s (Retry-After honoured); returns when the new filesystem arrived. Every request is
    logged as (sent, answered, status), a refused connection as (sent, None, 0)."""
    from sharedfs_agent.daemon import Backoff
    from sharedfs_agent.sources.api import _retry_after

    backoff, etag, source, connection = Backoff(), "", f"127.0.0.{2 + index % SOURCES}", None
    path = f"/v1.1/{PROJECT}/os-instances/vm{index}/filesystems"
    while True:
        sent = time.monotonic()
        if etag:
            ready.set()  # the request about to be sent is a held poll
        try:
            connection, status, headers, body = await _exchange(connection, port, source,
                                                                path + (f"?wait={WAIT}" if etag else ""), token, etag)
        except OSError:
            connection = None
            log.append((sent, None, 0))
            await asyncio.sleep(backoff.next())
            continue
        answered = time.monotonic()
        log.append((sent, answered, status))
        if status not in (200, 304):
            await asyncio.sleep(backoff.next(_retry_after(headers)))
            continue
        backoff.reset()
        if status == 200 and b"fanout-new" in body:
            return answered
        etag = headers.get("ETag", "") or etag


async def _agents(ports: list, first: int, tokens: list) -> None:
    log: list = []
    readies = [asyncio.Event() for _ in tokens]
    tasks = []
    for i, token in enumerate(tokens, first):
        tasks.append(asyncio.ensure_future(_agent(ports[i % len(ports)], i, token, readies[i - first], log)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # 2,000 a second: a boot storm, not a SYN flood on the backlog
    for event in readies:
        await event.wait()
    print("ready", flush=True)
    done = await asyncio.gather(*tasks)
    print(json.dumps({"done": done, "log": log}), flush=True)


def client_main(ports: list, first: int, tokens_file: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per agent
    tokens = json.loads(Path(tokens_file).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_agents(ports, first, tokens))


# --- the fleet (servers, database, client processes) -------------------------------------------------------


class Fleet:
    """K servers on one database, N agents in client processes; everything stopped by pid."""

    def __init__(self, base: Path, n: int, servers: int, sqlite: bool, shedding: tuple = ("--max-lag", "0")) -> None:
        self.base, self.n = base / f"n{n}", n
        self.base.mkdir()
        self.postgres = None if sqlite else Postgres(self.base / "pg").start()
        self.url = f"sqlite:///{self.base / 'api.db'}" if sqlite else self.postgres.create_database("sharedfs")
        tokens = seed(self.url, n)
        # Enough connections for this server's share of the fleet, plus the rest of the world.
        args = ["--max-connections", str(n // servers + 1000), "--log-level", "warning", *shedding]
        self.servers = [ApiServer(self.base / f"api{k}", db_url=self.url, extra_args=args) for k in range(servers)]
        self.start_servers()
        self.admin = self.servers[0].token("admin")
        ports = ",".join(str(s.port) for s in self.servers)
        self.rss_before = self.rss()
        self.clients = []
        for first in range(0, n, AGENTS_PER_PROCESS):
            share = self.base / f"tokens{first}.json"
            share.write_text(json.dumps(tokens[first : first + AGENTS_PER_PROCESS]))
            self.clients.append(subprocess.Popen([sys.executable, __file__, "--client", ports, str(first), str(share)],
                                                 stdout=subprocess.PIPE, text=True))  # fmt: skip

    def start_servers(self) -> float:
        """All together (as after an outage); the monotonic time when the first one answered
        (the API is back: agents are served from then on)."""
        answered: list = []
        threads = [threading.Thread(target=lambda s=s: answered.append(s.start() and time.monotonic()))
                   for s in self.servers]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len(answered) < len(self.servers):
            raise RuntimeError(f"a server did not start; see {self.base}/api*/server-*.log")
        return min(answered)

    def procs(self) -> list:
        return [psutil.Process(s.proc.pid) for s in self.servers]

    def db_procs(self) -> list:
        if self.postgres is None:
            return []
        main = next(
            p for p in psutil.process_iter(["cmdline"]) if str(self.postgres.data) in " ".join(p.info["cmdline"] or [])
        )
        return [main, *main.children()]

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.procs())

    @staticmethod
    def cpu(procs: list) -> float:
        total = 0.0
        for p in procs:
            try:
                total += sum(p.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    def wait_ready(self) -> float:
        start = time.monotonic()
        for c in self.clients:
            assert c.stdout.readline().strip() == "ready", "a client process failed"
        return time.monotonic() - start

    def wait_held(self, limit: float = 120) -> float:
        """Seconds until every agent's poll is open at a server (N established connections: shed
        polls came back) and the servers' CPU is under 5 % of a core (every poll reached its wait)."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            procs = self.procs()
            held = sum(1 for p in procs for c in p.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)
            before = self.cpu(procs)
            time.sleep(0.5)
            if held >= self.n and self.cpu(procs) - before < 0.025:
                return time.monotonic() - start
        raise AssertionError(f"only {held} of {self.n} polls held after {limit:.0f} s")

    def create(self, server: ApiServer = None) -> float:
        sent = time.monotonic()
        while True:
            response = (server or self.servers[0]).call("PUT", f"/v1.1/{PROJECT}/os-filesystem/fanout-new", self.admin,
                                                        json=CREATE)  # fmt: skip
            if response.status_code != 503:  # shed (a returning fleet): an admin's client comes back too
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code == 201, response.text
        return sent

    def results(self) -> tuple:
        done, log = [], []
        for c in self.clients:
            out = json.loads(c.stdout.readline())
            done += out["done"]
            log += out["log"]
            c.wait(60)
        assert len(done) == self.n, "some agent never got the change"
        return done, log

    def stop(self) -> None:
        for c in self.clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        for s in self.servers:
            s.stop()
        if self.postgres is not None:
            self.postgres.stop()


def pct(values: list, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def run(fleet: Fleet) -> dict:
    hold = fleet.wait_ready()
    hold += fleet.wait_held()
    rss = fleet.rss()
    servers, database = fleet.procs(), fleet.db_procs()
    cpu0, db0, wall0 = fleet.cpu(servers), fleet.cpu(database), time.monotonic()
    time.sleep(10)
    wall = time.monotonic() - wall0
    idle, db_idle = (fleet.cpu(servers) - cpu0) / wall * 100, (fleet.cpu(database) - db0) / wall * 100
    cpu0 = fleet.cpu(servers)
    sent = fleet.create()
    done, _ = fleet.results()
    woken = (fleet.cpu(servers) - cpu0) / fleet.n  # the servers' CPU per woken poll (from the create to the end)
    delays = [t - sent for t in done]
    k = len(fleet.servers)
    by_server = [(min(delays[i::k]), max(delays[i::k])) for i in range(k)]  # agent i polls server i mod K
    return {"hold": hold, "idle": idle, "db_idle": db_idle, "p50": pct(delays, 0.5), "p99": pct(delays, 0.99),
            "max": max(delays), "per_poll": (rss - fleet.rss_before) / fleet.n, "woken": woken,
            "by_server": by_server}  # fmt: skip


def run_outage(fleet: Fleet, down: float) -> dict:
    fleet.wait_ready()
    fleet.wait_held()
    for s in fleet.servers:
        s.stop(signal.SIGKILL)  # every held poll is cut at once, as in a crash
    killed = time.monotonic()
    # The change is made while the agents' API is down (through a process on a port no agent
    # knows), so every returning agent's first answer is the new set: what is measured is the
    # return itself, not an admin's create queued behind 20,000 agents.
    side = ApiServer(fleet.base / "side", db_url=fleet.url).start()
    try:
        fleet.create(side)
    finally:
        side.stop()
    time.sleep(max(0.0, down - (time.monotonic() - killed)))
    back = fleet.start_servers()
    cpu0 = fleet.cpu(fleet.procs())
    done, log = fleet.results()
    storm = time.monotonic() - back
    cpu = (fleet.cpu(fleet.procs()) - cpu0) / storm * 100
    converged = [t - back for t in done]
    returned = [(sent, answered, status) for sent, answered, status in log if answered and sent >= back]
    per_second: dict = {}
    for sent, _, _ in returned:
        per_second[int(sent - back)] = per_second.get(int(sent - back), 0) + 1
    latency = [answered - sent for sent, answered, _ in returned]
    return {"all": max(converged), "median": pct(converged, 0.5), "peak_rate": max(per_second.values()),
            "mean_rate": len(returned) / max(1.0, max(converged)), "shed": sum(1 for *_, s in returned if s == 503),
            "requests": len(returned), "p50": pct(latency, 0.5), "p99": pct(latency, 0.99), "cpu": cpu}  # fmt: skip


def main() -> None:
    from sharedfs_agent.daemon import BACKOFF_CAP

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 5000, 20000])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--sqlite", action="store_true", help="one server process on SQLite")
    parser.add_argument("--outage", type=float, metavar="SECONDS")
    parser.add_argument("--max-busy", type=int, default=256, help="the servers' --max-busy (default: theirs, 256)")
    parser.add_argument("--max-lag", type=float, default=0.0,
                        help="the servers' --max-lag (default 0: off, theirs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # `timeout`: the finally blocks stop what was started
    servers = 1 if args.sqlite else args.servers
    where = "SQLite, one process" if args.sqlite else f"PostgreSQL, {servers} processes"
    base = Path(tempfile.mkdtemp(prefix="sharedfs-fanout-"))
    os.chmod(base, 0o755)  # PostgreSQL runs as its own user under it
    where += f"; --max-busy {args.max_busy} --max-lag {args.max_lag:g}"
    if args.outage is None:
        print(f"fanout: N long-polling agents, one project-scope filesystem created ({where})")
    else:
        print(f"return after an outage: N agents (the agent's Backoff, cap {BACKOFF_CAP:.0f} s), every server killed, "
              f"down {args.outage:.0f} s, a project-scope create meanwhile, back ({where})")  # fmt: skip
    try:
        for n in args.sizes:
            shedding = ("--max-busy", str(args.max_busy), "--max-lag", str(args.max_lag))
            fleet = Fleet(base, n, servers, args.sqlite, shedding)
            try:
                r = run(fleet) if args.outage is None else run_outage(fleet, args.outage)
            finally:
                fleet.stop()
            if args.outage is None:
                print(f"  N={n:6}: all held in {r['hold']:5.1f} s; idle CPU servers {r['idle']:4.1f} % (database "
                      f"{r['db_idle']:3.1f} %); fan-out p50 {r['p50'] * 1000:5.0f} ms p99 {r['p99'] * 1000:5.0f} ms "
                      f"max {r['max'] * 1000:5.0f} ms ({r['woken'] * 1e6:.0f} us of server CPU per woken poll); "
                      f"{r['per_poll'] / 1024:5.1f} KiB per held poll"
                      "   goals: max <= 2000 ms, idle < 5 %", flush=True)  # fmt: skip
                spans = " / ".join(f"{a * 1000:.0f}-{b * 1000:.0f}" for a, b in r["by_server"])
                print(f"          first-last agent per server (the create sent through the first): {spans} ms", flush=True)
            else:
                print(f"  N={n:6}: every agent had it {r['all']:5.1f} s after the servers were back (median "
                      f"{r['median']:4.1f} s; goal <= 15 s); {r['requests']} requests, peak {r['peak_rate']}/s, "
                      f"mean {r['mean_rate']:.0f}/s, {r['shed']} shed (503); latency p50 {r['p50'] * 1000:.0f} ms "
                      f"p99 {r['p99'] * 1000:.0f} ms; servers' CPU {r['cpu']:.0f} % of a core meanwhile", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main([int(p) for p in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4])
    else:
        main()
    os._exit(0)
