"""cloud-init documents and the systemd unit: shapes, refused values, and no private mount namespace."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sharedfs_api.cloudinit import render
from tests.support import require

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "sharedfs-agent.service"
TOKEN = "A" * 43


def test_user_data_carries_config_token_unit_and_installer():
    doc = render("https://api.example:8776", "https://api.example:8776/agent/simple/", ["glusterfs", "nfs"],
                 token=TOKEN, instance_id="vm-1", project="p1")  # fmt: skip
    assert doc.startswith("#cloud-config\n")
    assert "      instance_id = vm-1\n      project = p1\n" in doc
    assert f'    permissions: "0600"\n    content: "{TOKEN}"' in doc
    assert "Type=notify" in doc and "install-agent.sh" in doc
    assert '"https://api.example:8776/agent/simple/", "", "glusterfs", "nfs"]' in doc


def test_vendor_data_reads_the_token_from_instance_metadata():
    doc = render("https://api.example:8776", "https://api.example:8776/agent/simple/", ["glusterfs"])
    assert TOKEN not in doc and "instance_id" not in doc
    assert "token-from-metadata.py" in doc and "sharedfs_token" in doc


@pytest.mark.parametrize(
    "over, words",
    [
        ({"api_url": "https://x\n  - evil"}, "api url"),
        ({"api_url": "file:///etc/passwd"}, "api url"),
        ({"token": 'abc"\nruncmd: [rm]'}, "token"),
        ({"instance_id": "vm 1"}, "instance id"),
        ({"fs_types": ["ext4"]}, "ext4"),
        ({"ca_pem": "not a certificate"}, "CA bundle"),
    ],
)
def test_values_that_could_break_the_yaml_are_refused(over, words):
    args = {"api_url": "https://a:1", "index_url": "https://a:1/agent/simple/", "fs_types": ["glusterfs"],
            "token": TOKEN, "instance_id": "vm1", "project": "p1", **over}  # fmt: skip
    with pytest.raises(ValueError, match=None) as e:
        render(**args)
    assert words in str(e.value)


def test_unit_never_puts_the_agent_in_a_private_mount_namespace():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    service = parser["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always" and "WatchdogSec" in service
    assert "network-online.target" in parser["Unit"]["After"]
    for option in ("PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateMounts", "PrivateDevices",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                   "ProtectClock", "ProtectProc", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
                   "TemporaryFileSystem", "BindPaths", "RootDirectory", "RootImage", "MountFlags"):  # fmt: skip
        assert option not in service, option


def test_systemd_analyze_verify_prints_nothing():
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian package systemd)")
    require(os.geteuid() == 0, "root, for a private mount namespace holding a stand-in /opt/sharedfs-agent")
    # ExecStart must exist for verify; a stand-in is made in a private mount namespace only.
    script = ("mount -t tmpfs tmpfs /opt && mkdir -p /opt/sharedfs-agent/bin && "
              "printf '#!/bin/sh\\n' > /opt/sharedfs-agent/bin/sharedfs-agent && "
              "chmod +x /opt/sharedfs-agent/bin/sharedfs-agent && exec systemd-analyze verify \"$1\"")  # fmt: skip
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(UNIT)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
