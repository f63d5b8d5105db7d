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

The peers of issue 15 — google-guest-agent (Go) in a systemd-nspawn container with
--private-network, os-collect-config — are measured only when their Debian package is installed;
otherwise the bench says so and skips them.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
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


def peers() -> list:
    """The two peers of issue 15, when their Debian packages are here; what is skipped, and why."""
    notes = []
    for package, how in (("google-guest-agent", "in a systemd-nspawn container with --private-network"),
                         ("os-collect-config", "polling a loopback metadata server")):  # fmt: skip
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in installed.stdout:
            policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
            where = "a candidate exists in the apt sources" if "Candidate:" in policy else "not in the apt sources"
            notes.append(f"{package}: skipped, package not installed ({where}); would run {how}")
        else:
            notes.append(f"{package}: installed, but measuring it is not implemented yet; would run {how}")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=120.0, help="idle seconds measured (default 120)")
    parser.add_argument("--only", choices=("venv", "debian"), help="measure one Python only")
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
    for r in rows:
        missed = [k for k in ("rss", "uss", "cpu_hour") if r[k] > GOALS[k]]
        print(f"  {r['name']}: {'meets every goal' if not missed else 'misses ' + ', '.join(missed)}")
    for note in peers():
        print(f"  {note}")


if __name__ == "__main__":
    main()
