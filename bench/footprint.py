"""Benchmark: the idle agent's memory, CPU and requests, on the project's Python and on Debian's, beside its peers.

Run as root: .venv/bin/python bench/footprint.py [--window SECONDS] [--only venv|debian]

A real sharedfs-api (static driver, access log on) serves one instance on loopback; sharedfs-agent
runs its daemon (source api, long-poll) in a private mount namespace with its own fstab and state,
nothing attached, and idles for the window. It is run twice: with this venv's Python, and
installed as an instance installs it, into a venv made from Debian's /usr/bin/python3 with
--system-site-packages (psutil from Debian's python3-psutil). For each: RSS and USS at the end
(psutil), CPU seconds per idle hour from the per-thread scheduler counters
(/proc/PID/task/*/schedstat), wake-ups (context switches) and requests per minute (the API's
access log). Goals: USS <= 13 MB, RSS <= 20 MB, CPU <= 0.25 s per idle hour.

The peers of issue 15: google-guest-agent (Go, Debian's package fetched with `apt-get download`)
runs in a booted systemd-nspawn container with --private-network (it manages users, SSH keys and
routes: never on the host) against a loopback GCE metadata server inside it that holds
`wait_for_change` long-polls; it is measured the same way from the host. os-collect-config has no
Debian 12 package: the bench says so and skips it, as it skips any peer whose package is absent.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from devtools.apiserver import ApiServer  # noqa: E402
from devtools.workspace import workspace  # noqa: E402

DEBIAN_PYTHON = "/usr/bin/python3"
GOALS = {"uss": 13.0, "rss": 20.0, "cpu_hour": 0.25}


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU, summed over the process's threads (the scheduler's own counter)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def switches(pid: int) -> int:
    """Context switches of all threads: each is a wake-up (or a preemption)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def interpreter_sharers(pid: int) -> int:
    """Other processes running the same interpreter executable: while there are any, its text
    pages are shared and leave the agent's USS (some 2-5 MB on Debian's static python3.11)."""
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return 0
    count = 0
    for other in psutil.pids():
        if other != pid:
            try:
                count += os.path.realpath(f"/proc/{other}/exe") == exe
            except OSError:
                pass
    return count


def debian_venv(base: Path) -> Path:
    """The agent installed as on an instance: a venv of Debian's python3 seeing Debian's psutil, the wheel without deps."""
    if not os.path.exists(DEBIAN_PYTHON):
        raise RuntimeError(f"{DEBIAN_PYTHON} is missing")
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import psutil"], capture_output=True)
    if probe.returncode != 0:
        raise RuntimeError("Debian's python3-psutil is not installed (apt-get install python3-psutil)")
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(REPO / "packaging" / "sharedfs-agent")], check=True, capture_output=True)  # fmt: skip
    venv = base / "debian-venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    wheel = next(wheels.glob("sharedfs_agent-*.whl"))
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)  # fmt: skip
    return venv / "bin" / "python"


def measure_agent(label: str, python: str, api: ApiServer, base: Path, window: float, token: str) -> dict:
    home = base / label
    (home / "mnt").mkdir(parents=True)
    token_file = home / "token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    (home / "fstab").write_text("UUID=0a1b / ext4 defaults 0 1\n")
    config = home / "agent.conf"
    config.write_text(
        f"[agent]\nsource = api\nstate_dir = {home}/state\nfstab = {home}/fstab\nallowed_roots = {home}/mnt\n"
        f"[api]\nurl = {api.url}\ntoken_file = {token_file}\ninstance_id = vm-{label}\nproject = bench\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    log = open(home / "agent.log", "wb")  # noqa: SIM115 - closed below
    # unshare execs the agent: the pid is the agent's, and its mount table is a private copy.
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", python, "-m", "sharedfs_agent",
                             "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=str(home))  # fmt: skip
    try:
        time.sleep(3)  # started, registered, holding its long-poll
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited: {(home / 'agent.log').read_text()[-2000:]}")
        access = Path(api.log.name)
        requests0 = access.read_text(errors="replace").count(f"vm-{label}/filesystems")
        cpu0, sw0 = cpu_ns(proc.pid), switches(proc.pid)
        time.sleep(window)
        cpu, sw = cpu_ns(proc.pid) - cpu0, switches(proc.pid) - sw0
        requests = access.read_text(errors="replace").count(f"vm-{label}/filesystems") - requests0
        memory = psutil.Process(proc.pid).memory_full_info()
        sharing = interpreter_sharers(proc.pid)
        threads = psutil.Process(proc.pid).num_threads()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True).stdout.strip()  # fmt: skip
    return {"name": f"sharedfs-agent ({label}: Python {version})", "rss": memory.rss / 2**20,
            "uss": memory.uss / 2**20, "pss": memory.pss / 2**20, "cpu_hour": cpu / 1e9 * 3600 / window, "wakeups_min": sw * 60 / window,
            "requests_min": requests * 60 / window, "threads": threads, "sharing": sharing}  # fmt: skip


# GCE's metadata server, as much as google_guest_agent asks of it: the recursive document, and
# wait_for_change held until the ETag changes or timeout_sec passes. Runs inside the container.
FAKE_GCE_METADATA = r"""
import http.server, json, time, urllib.parse
DOC = json.dumps({"instance": {"id": 1, "hostname": "bench", "zone": "projects/1/zones/bench-a",
                               "attributes": {}, "networkInterfaces": []},
                  "project": {"projectId": "bench", "numericProjectId": 1, "attributes": {}}}).encode()
COUNT = "/var/lib/fake-gce-metadata.count"
served = 0
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global served
        served += 1
        with open(COUNT, "w") as f:
            f.write(str(served))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.headers.get("Metadata-Flavor") != "Google":
            self.send_response(403); self.send_header("Content-Length", "0"); self.end_headers(); return
        if query.get("wait_for_change") == ["true"] and query.get("last_etag") == ["1"]:
            time.sleep(float(query.get("timeout_sec", ["60"])[0]))  # nothing ever changes
        self.send_response(200)
        self.send_header("Metadata-Flavor", "Google"); self.send_header("ETag", "1")
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(DOC)))
        self.end_headers(); self.wfile.write(DOC)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("169.254.169.254", 80), Handler).serve_forever()
"""

FAKE_GCE_UNIT = """[Unit]
Description=a loopback GCE metadata server for bench/footprint.py
Before=google-guest-agent.service
[Service]
ExecStartPre=/sbin/ip addr add 169.254.169.254/32 dev lo
ExecStartPre=/sbin/ip link set lo up
ExecStart=/usr/bin/python3 /usr/local/bin/fake-gce-metadata.py
[Install]
WantedBy=multi-user.target
"""


def measure_google_guest_agent(base: Path, window: float) -> dict:
    """google_guest_agent (Go) from Debian's package, in a booted container with --private-network
    (it cannot touch the host: it manages users, SSH keys and routes), against a loopback metadata
    server inside that container."""
    from devtools.container import rootfs

    work = base / "gce"
    work.mkdir()
    subprocess.run(["apt-get", "download", "google-guest-agent"], cwd=work, check=True, capture_output=True)
    root = work / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs()), str(root)], check=True)
    # Unpacked beside, then copied: extracting into the root would replace its /lib symbolic link
    # (merged /usr) with a directory.
    unpacked = work / "deb"
    subprocess.run(["dpkg-deb", "-x", str(next(work.glob("google-guest-agent_*.deb"))), str(unpacked)], check=True)
    for binary in (unpacked / "usr/bin").iterdir():
        shutil.copy2(binary, root / "usr/bin" / binary.name)
    for unit in (unpacked / "lib/systemd/system").iterdir():
        shutil.copy2(unit, root / "usr/lib/systemd/system" / unit.name)
    (root / "etc/cloud/cloud-init.disabled").write_text("")
    (root / "usr/local/bin/fake-gce-metadata.py").write_text(FAKE_GCE_METADATA)
    (root / "etc/systemd/system/fake-gce-metadata.service").write_text(FAKE_GCE_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit, target in (("fake-gce-metadata.service", "/etc/systemd/system/fake-gce-metadata.service"),
                         ("google-guest-agent.service", "/usr/lib/systemd/system/google-guest-agent.service")):  # fmt: skip
        (wants / unit).symlink_to(target)
    name = f"sfs-gce{os.getpid() % 10000}"
    console = open(work / "console.log", "wb")  # noqa: SIM115 - closed below
    nspawn = subprocess.Popen(["systemd-nspawn", "-b", "-D", str(root), "--private-network", "--register=no",
                               "--keep-unit", f"--machine={name}", "--console=read-only"],
                              stdout=console, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        agent = None
        deadline = time.monotonic() + 90
        while agent is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for child in psutil.Process(nspawn.pid).children(recursive=True):
                try:
                    if child.name().startswith("google_guest"):
                        agent = child
                except psutil.Error:
                    pass
        if agent is None:
            console.flush()
            tail = (work / "console.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"google_guest_agent did not start; the container's console:\n{tail}")
        time.sleep(15)  # past its start-up work
        count = root / "var/lib/fake-gce-metadata.count"
        requests0 = int(count.read_text() or 0) if count.exists() else 0
        cpu0, sw0 = cpu_ns(agent.pid), switches(agent.pid)
        time.sleep(window)
        cpu, sw = cpu_ns(agent.pid) - cpu0, switches(agent.pid) - sw0
        requests = (int(count.read_text() or 0) if count.exists() else 0) - requests0
        memory = agent.memory_full_info()
        threads = agent.num_threads()
    finally:
        nspawn.send_signal(signal.SIGTERM)  # a clean poweroff of the container
        try:
            nspawn.wait(60)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait()
        console.close()
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{name}", ignore_errors=True)
    version = subprocess.run(["dpkg-deb", "-f", str(next(work.glob("google-guest-agent_*.deb"))), "Version"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {"name": f"google_guest_agent (Go, {version})", "rss": memory.rss / 2**20, "uss": memory.uss / 2**20,
            "pss": memory.pss / 2**20, "cpu_hour": cpu / 1e9 * 3600 / window, "wakeups_min": sw * 60 / window,
            "requests_min": requests * 60 / window, "threads": threads, "sharing": 0}  # fmt: skip


def peers(base: Path, window: float) -> tuple:
    """The peers of issue 15 that can run here: rows, and notes on what is skipped and why."""
    rows, notes = [], []
    policy = subprocess.run(["apt-cache", "policy", "google-guest-agent"], capture_output=True, text=True).stdout
    if "Candidate: (none)" in policy or "Candidate:" not in policy:
        notes.append("google-guest-agent: skipped, its package is not in this machine's apt sources")
    elif not shutil.which("systemd-nspawn"):
        notes.append("google-guest-agent: skipped, systemd-nspawn is missing (Debian package systemd-container)")
    else:
        rows.append(measure_google_guest_agent(base, window))
    policy = subprocess.run(["apt-cache", "policy", "os-collect-config"], capture_output=True, text=True).stdout
    if "Candidate:" not in policy or "Candidate: (none)" in policy:
        notes.append("os-collect-config: skipped, its package is not in this machine's apt sources (Debian 12 has none)")
    else:
        notes.append("os-collect-config: skipped, measuring it is not implemented")
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=120.0, help="idle seconds measured (default 120)")
    parser.add_argument("--only", choices=("venv", "debian", "peers"), help="measure only these")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="footprint-", dir=workspace()))
    api = ApiServer(base / "api", extra_args=["--access-log"]).start()
    rows = []
    try:
        runs = []
        if args.only in (None, "venv"):
            runs.append(("venv", sys.executable))
        if args.only in (None, "debian"):
            runs.append(("debian", str(debian_venv(base))))
        for label, python in runs:
            token = api.token("instance", "bench", f"vm-{label}")
            rows.append(measure_agent(label, python, api, base, args.window, token))
        notes: list = []
        if args.only in (None, "peers"):
            peer_rows, notes = peers(base, args.window)
            rows += peer_rows
    finally:
        api.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"footprint: idle {args.window:.0f} s, source api (long-poll, wait 60), nothing attached")
    print(f"  {'agent':<44} {'RSS MB':>7} {'USS MB':>7} {'PSS MB':>7} {'CPU s/h':>8} {'wakeups/min':>12} "
          f"{'req/min':>8} {'threads':>7} {'sharing':>7}")  # fmt: skip
    for r in rows:
        print(f"  {r['name']:<44} {r['rss']:7.1f} {r['uss']:7.1f} {r['pss']:7.1f} {r['cpu_hour']:8.3f} "
              f"{r['wakeups_min']:12.1f} {r['requests_min']:8.1f} {r['threads']:7d} {r['sharing']:7d}")  # fmt: skip
    print("  sharing: other processes running the same interpreter executable at the end (0: its pages are all in USS)")
    print(f"  goals: RSS <= {GOALS['rss']} MB, USS <= {GOALS['uss']} MB, CPU <= {GOALS['cpu_hour']} s per idle hour")
    ours = [r for r in rows if r["name"].startswith("sharedfs-agent")]
    for r in ours:
        missed = [k for k in ("rss", "uss", "cpu_hour") if r[k] > GOALS[k]]
        print(f"  {r['name']}: {'meets every goal' if not missed else 'misses ' + ', '.join(missed)}")
    go = next((r for r in rows if r["name"].startswith("google_guest_agent")), None)
    for r in ours if go else ():
        print(f"  {r['name']} / Go agent: RSS {r['rss'] / go['rss']:.2f}, USS {r['uss'] / go['uss']:.2f}, "
              f"CPU {r['cpu_hour'] / go['cpu_hour'] if go['cpu_hour'] else float('inf'):.2f}")  # fmt: skip
    for note in notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
