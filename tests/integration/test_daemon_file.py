"""The daemon with the file source: reacts to the file, reloads on SIGHUP, runs once per state_dir."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from .conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


def test_daemon_follows_the_file_and_reloads_on_sighup(agent, glusterd):
    export = glusterd.create_volume("dfile")
    agent.desire(agent.entry("dfile", export))
    log = open(agent.base / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = agent.ns.popen(agent.command("run"), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: agent.mounted("dfile"), timeout=20)
        second = agent.ns.run(agent.command("run"), timeout=20)
        assert second.returncode == 2 and "another sharedfs-agent daemon" in second.stderr

        agent.desire()
        assert wait_for(lambda: not agent.mounted("dfile"), timeout=20)

        # SIGHUP: a new config naming another document takes effect without a restart.
        other = agent.base / "other.json"
        other.write_text(json.dumps({"filesystems": [agent.entry("dfile", export)]}))
        agent.config.write_text(agent.config.read_text().replace(str(agent.doc), str(other)))
        daemon.send_signal(signal.SIGHUP)
        assert wait_for(lambda: agent.mounted("dfile"), timeout=20)

        # A broken config on SIGHUP is refused; the daemon keeps running on the old one.
        good = agent.config.read_text()
        agent.config.write_text(good + "[agent]\nbogus = 1\n")
        daemon.send_signal(signal.SIGHUP)
        other.write_text(json.dumps({"filesystems": []}))
        assert wait_for(lambda: not agent.mounted("dfile"), timeout=20)
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        log.close()
    text = (agent.base / "daemon.log").read_text()
    assert "reload refused" in text
    glusterd.delete_volume("dfile")
