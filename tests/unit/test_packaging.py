"""Each program owns its files: the agent's wheel carries its unit and installer and nothing of the API."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from sharedfs_agent.cli import main as agent_main
from sharedfs_agent.mounters import BUILTIN
from sharedfs_api import cloudinit

REPO = Path(__file__).resolve().parents[2]


def test_the_agent_wheel_holds_the_agent_its_unit_and_installer_and_nothing_of_the_api(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(REPO / "packaging" / "sharedfs-agent")], check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("sharedfs_agent-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert not [n for n in names if n.startswith("sharedfs_api")]
        # The real files live in the repository's systemd/ and cloud-init/; the wheel carries their bytes.
        for shipped, real in (("sharedfs-agent.service", "systemd"), ("install-agent.sh", "cloud-init"),
                              ("token-from-metadata.py", "cloud-init")):  # fmt: skip
            assert z.read(f"sharedfs_agent/install/{shipped}") == (REPO / real / shipped).read_bytes()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert all("psutil" in line or "extra ==" in line for line in requires), requires


def test_the_generator_knows_every_type_the_agent_mounts():
    assert tuple(BUILTIN) == cloudinit.FS_TYPES


def test_packages_come_from_the_mounters(capsys):
    assert agent_main(["packages", "glusterfs", "nfs", "cephfs"]) == 0
    assert capsys.readouterr().out.split() == ["glusterfs-client", "nfs-common", "ceph-common"]
    assert agent_main(["packages", "--family", "rhel", "glusterfs", "nfs"]) == 0
    assert capsys.readouterr().out.split() == ["glusterfs-fuse", "nfs-utils"]
    # Lustre's client comes from the site's repository and virtiofs from the kernel: nothing to install.
    assert agent_main(["packages", "lustre", "virtiofs"]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert agent_main(["packages", "ext4"]) == 2
    assert "unknown filesystem type ext4" in capsys.readouterr().err


def test_the_installer_names_no_package_of_a_filesystem_type():
    script = (REPO / "cloud-init" / "install-agent.sh").read_text()
    for mounter in BUILTIN.values():
        for package in mounter.packages.values():
            assert package not in script, package
    assert "sharedfs-agent packages" in script
