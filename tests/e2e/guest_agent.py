"""What every guest script shares (imported from the script's own directory inside the QEMU guest):
the agent's state, fstab and config on the guest's tmpfs, a desired-state document, one pass, the mount table."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request


class AgentProcess:
    """One sharedfs-agent command in its own process: a fork of this interpreter, which has imported the
    agent once, running the command line's own main(). Each command still starts from the agent's files
    alone, as a fresh `sharedfs-agent` would; what is saved is the interpreter start and the imports,
    seconds each on the guest's emulated CPU (several a test)."""

    def __init__(self, args) -> None:
        from sharedfs_agent import cli  # imported before the fork: each child starts with it loaded

        # Read after the child has exited, so they outlive this method.
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: the agent's main() on fresh stdout and stderr, then its exit status
            status = 1
            try:
                os.dup2(self._out.fileno(), 1)
                os.dup2(self._err.fileno(), 2)
                sys.argv = ["sharedfs-agent", *args]
                status = cli.main(list(args))
            except SystemExit as e:  # argparse's errors, as `python -m sharedfs_agent` would exit
                status = e.code if isinstance(e.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(wait_status)
        return self.returncode

    def communicate(self, timeout: float):
        """(stdout, stderr) once it has exited; killed and subprocess.TimeoutExpired after timeout seconds."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise subprocess.TimeoutExpired(["sharedfs-agent"], timeout)
            time.sleep(0.05)
        return tuple(self._read(f) for f in (self._out, self._err))

    @staticmethod
    def _read(f) -> str:
        f.seek(0)
        return f.read().decode(errors="replace")


class GuestAgent:
    """sharedfs-agent in the guest with its files below `base`; `sections` is the rest of agent.conf."""

    def __init__(self, base: str, sections: str, mount_timeout: int = 60, source: str = "file") -> None:
        self.base, self.conf = base, f"{base}/agent.conf"
        subprocess.run(["mkdir", "-p", f"{base}/state"], check=True)
        with open(f"{base}/fstab", "w") as f:
            f.write("# guest fstab\n")
        with open(self.conf, "w") as f:
            f.write(f"[agent]\nsource = {source}\nstate_dir = {base}/state\nfstab = {base}/fstab\n"
                    f"allowed_roots = /mnt/share\nmount_timeout = {mount_timeout}\n{sections}")  # fmt: skip

    def desire(self, *entries) -> None:
        """The file source's document: exactly these entries."""
        with open(f"{self.base}/doc.json", "w") as f:
            json.dump({"filesystems": list(entries)}, f)

    def start(self, *args) -> AgentProcess:
        """`sharedfs-agent ARGS --config …` started."""
        return AgentProcess([*args, "--config", self.conf])

    def run(self, *args, timeout: float = 600):
        """`sharedfs-agent ARGS --config …` to its end: exit status, stdout, stderr."""
        process = self.start(*args)
        out, err = process.communicate(timeout)
        return process.returncode, out, err

    def once(self, tail: int = 800):
        """One pass: its exit status and the end of its log."""
        rc, _, log = self.run("once")
        return rc, log[-tail:]

    def our_lines(self) -> list:
        with open(f"{self.base}/fstab") as f:
            return [line for line in f if "x-sharedfs-agent" in line]


def mount_fields(mount_point: str):
    """The mountinfo fields of the top mount at mount_point (id first), or None."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mount_point:
                found = fields
    return found


def kernel_type(mount_point: str):
    """The filesystem type the kernel shows at mount_point, or None."""
    fields = mount_fields(mount_point)
    return fields[fields.index("-") + 1] if fields else None


def post(url: str, body: bytes = b"", timeout: float = 20):
    """POST to the test's control server on the host (never through a proxy); the HTTP status."""
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout) as answer:
        return answer.status
