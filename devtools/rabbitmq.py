"""A real RabbitMQ broker for tests: Debian's rabbitmq-server on 127.0.0.1, a private node name, dirs and epmd."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from .apiserver import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def installed() -> bool:
    return os.path.exists(SERVER)


class RabbitMQ:
    """One node; stop() ends it by pid and then the epmd it started on its private port.
    restart() keeps the node's state directory, so durable queues and persistent messages survive."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.node = f"sharedfs{self.port}@localhost"
        self.url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"
        self.proc: Optional[subprocess.Popen] = None

    def _env(self) -> dict:
        home = self.base / "home"  # a private .erlang.cookie
        return {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 90) -> RabbitMQ:
        if not installed():
            raise RuntimeError("rabbitmq-server is not installed (Debian package rabbitmq-server; run scripts/setup.sh)")
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        # guest/guest is allowed from loopback only, which is the only place this broker listens.
        (self.base / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        self.log = open(self.base / "log" / "foreground.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_offset = self.log.tell()
        self.proc = subprocess.Popen([SERVER], env=self._env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.base / "log" / "foreground.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start:\n{tail}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        # Only what this start wrote counts: a restart appends to the same log.
        with open(self.base / "log" / "foreground.log", "rb") as log:
            log.seek(self._log_offset)
            if b"Starting broker... completed" not in log.read():
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.log.close()
            self.proc = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        # The node daemonized an epmd on our private port; end that one process only.
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{self.epmd_port}"], capture_output=True, text=True).stdout
        for pid in set(re.findall(r"pid=(\d+)", out)):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if "epmd" in cmdline:
                os.kill(int(pid), signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
