"""Enrollment by Nova's vendordata end to end: an agent given only a metadata service mounts its project's filesystem.

The metadata service (devtools/metadata.py) makes vendor_data2.json as Nova's DynamicJSON provider
does, by a POST in Nova's format to the real API's /v1.1/vendordata; the agent's config names no
API URL, no token and no identity.
"""

from __future__ import annotations

import configparser
import stat

import pytest

from devtools.stack import LocalStack

from .conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def stack(glusterd, workdir):
    s = LocalStack(workdir / "agent-vendordata", glusterd, project="pv", instance="vm-vd", quota=False,
                   vendordata=True, agent_settings="mount_timeout = 20\nprobe_timeout = 3\n").start()  # fmt: skip
    yield s
    s.stop()


def test_an_instance_enrolled_by_vendordata_mounts_its_projects_filesystem(stack):
    config = configparser.ConfigParser()
    config.read(stack.config)
    assert set(config["api"]) == {"metadata_url", "token_file", "instance_data", "config_drive_dir"}
    stack.create("vdhome", scope="project")
    assert wait_for(lambda: stack.mounted("vdhome"), timeout=30), stack.log_path.read_text()
    assert wait_for(lambda: stack.reported("vdhome") == "mounted", timeout=10)
    assert ("sharedfs", 200) in stack.metadata.answers  # the enrollment was the API's own answer
    token_file = stack.base / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # Registered by the vendordata POST, its addresses then by the agent itself.
    listed = {i["id"]: i for i in stack.call("GET", "/v1.1/pv/os-instances").json()["instances"]}
    assert listed["vm-vd"]["addresses"] and all(not a.startswith("127.") for a in listed["vm-vd"]["addresses"])
    assert listed["vm-vd"]["last_seen"] is not None  # its long-poll, from the server's memory until written


def test_a_restart_without_the_metadata_service_still_converges(stack):
    assert wait_for(lambda: stack.mounted("vdhome"), timeout=30)
    assert stack.stop_agent() == 0
    stack.metadata.stop()
    posts = len(stack.metadata.answers)
    stack.start_agent()
    stack.create("vdlater", scope="project")
    assert wait_for(lambda: stack.mounted("vdlater"), timeout=30), stack.log_path.read_text()[-3000:]
    assert len(stack.metadata.answers) == posts and stack.mounted("vdhome")
