"""Real components for integration tests: glusterd on loopback, the agent in a private mount namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.namespace import MountNamespace
from tests.conftest import need_root
from tests.support import wait_for  # noqa: F401 - the integration tests import it from here

REPO = Path(__file__).resolve().parents[2]
FOREIGN_FSTAB = (REPO / "tests" / "fixtures" / "util-linux_fstab.comment").read_bytes() + b"/dev/sdz9 /mnt/keep ext4 ro"


class Agent:
    """One agent configuration (its own fstab, state dir and allowed root) in its own namespace."""

    def __init__(self, base: Path, ns: MountNamespace, **settings) -> None:
        self.base, self.ns = base, ns
        self.root = base / "mnt"
        self.fstab = base / "fstab"
        self.doc = base / "filesystems.json"
        self.config = base / "agent.conf"
        self.root.mkdir(parents=True)
        self.fstab.write_bytes(FOREIGN_FSTAB)
        agent = {
            "source": "file",
            "state_dir": base / "state",
            "fstab": self.fstab,
            "allowed_roots": self.root,
            "mount_timeout": 20,
            "probe_timeout": 3,
            **settings,
        }
        self.config.write_text(
            "[agent]\n" + "".join(f"{k} = {v}\n" for k, v in agent.items()) + f"[file]\npath = {self.doc}\n"
        )

    def mp(self, name: str) -> str:
        return str(self.root / name)

    def desire(self, *entries: dict) -> None:
        self.doc.write_text(json.dumps({"filesystems": list(entries)}))

    def entry(self, name: str, export: str, **over) -> dict:
        return {"name": name, "fs_type": "glusterfs", "export": export, "mount_point": self.mp(name), **over}

    def command(self, *args: str) -> list:
        return [sys.executable, "-m", "sharedfs_agent", *args, "--config", str(self.config)]

    def once(self, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.ns.run(self.command("once"), timeout=timeout)

    def status(self) -> dict:
        out = self.ns.run(self.command("status", "--json"), timeout=10)
        assert out.returncode == 0, out.stderr
        return {fs["name"]: fs for fs in json.loads(out.stdout)["filesystems"]}

    def our_lines(self) -> list:
        return [line for line in self.fstab.read_text().splitlines() if "x-sharedfs-agent" in line]

    def foreign_bytes(self) -> bytes:
        """The fstab without our lines: must stay FOREIGN_FSTAB byte for byte (plus the newline
        that terminates its last line once we append after it)."""
        kept = [line for line in self.fstab.read_bytes().splitlines(True) if b"x-sharedfs-agent" not in line]
        return b"".join(kept)

    def mounted(self, name: str):
        return self.ns.mounts().get(self.mp(name))


@pytest.fixture
def agent(workdir, request):
    need_root()
    base = workdir / request.node.name
    ns = MountNamespace()
    yield Agent(base, ns)
    ns.close(str(base))
