"""What every guest script shares (imported from the script's own directory inside the QEMU guest):
the agent's state, fstab and config on the guest's tmpfs, a desired-state document, one pass, the mount table."""

import json
import subprocess
import sys
import urllib.request


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

    def argv(self, *args) -> list:
        return [sys.executable, "-m", "sharedfs_agent", *args, "--config", self.conf]

    def once(self, tail: int = 800):
        """One pass: its exit status and the end of its log."""
        run = subprocess.run(self.argv("once"), capture_output=True, text=True)
        return run.returncode, run.stderr[-tail:]

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
