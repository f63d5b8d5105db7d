"""Session-wide real components: a work directory outside /tmp and one glusterd (only one can run per machine)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from devtools.apiserver import ApiServer
from devtools.cache import CACHE, prune_bytecode
from devtools.gluster import Glusterd, brick_host
from devtools.workspace import workspace
from tests.support import require

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # tmp_path must not be below /tmp: the agent refuses mount points inside system directories.
    if not config.option.basetemp:
        config.option.basetemp = str(workspace() / "pytest")
    # Some hundred API server starts in a run: each forks from a process that imported the server
    # once, instead of spending a second of CPU on imports (devtools/apiserver.py).
    ApiServer.fork_starts = True
    # Every Python the tests start from the project's venv (CLIs, agents, `openstack`, the API's zygote)
    # reads its modules' bytecode from one cache instead of compiling them from source at each start, as it does where
    # PYTHONDONTWRITEBYTECODE is set (the CI machines; setup.sh installs with --no-compile): an `openstack`
    # start took 5.5 s, 1.6 s with the cache. Outside the source trees (the container test copies
    # sharedfs_agent/), kept with the tests' other caches; Python checks each file against its source.
    # (Keystone's and Manila's venvs keep pip's own bytecode: devtools/venvcache.service_env.)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    if not hasattr(config, "workerinput"):  # once per run, not in each xdist worker
        prune_bytecode(CACHE / "pycache")


def need_root() -> None:
    require(os.geteuid() == 0, "needs root for mount(2) in a private mount namespace")
    require(shutil.which("unshare") is not None and shutil.which("nsenter") is not None, "util-linux unshare/nsenter")


@pytest.fixture(scope="session")
def workdir():
    base = workspace() / f"tests-{os.getpid()}"
    base.mkdir(parents=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def glusterd(workdir):
    need_root()
    require(os.path.exists("/usr/sbin/glusterd"), "glusterfs-server is not installed (run scripts/setup.sh)")
    require(shutil.which("mount.glusterfs") is not None, "glusterfs-client is not installed (run scripts/setup.sh)")
    require(os.path.exists("/dev/fuse"), "/dev/fuse is missing")
    try:
        brick_host()
    except RuntimeError as e:
        require(False, str(e))
    # 0.0.0.0: the driver test mounts from a network namespace it creates; nothing else connects.
    server = Glusterd(workdir / "glusterd", bind="0.0.0.0")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ceph_cluster(workdir):
    """One throw-away Ceph cluster for the session (~20 s to bootstrap): ceph-fuse and the guest's kernel client."""
    need_root()
    for tool in ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph-fuse", "mount.fuse.ceph"):
        require(shutil.which(tool) is not None or os.path.exists(f"/sbin/{tool}"),
                f"{tool} (Debian packages ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse; run scripts/setup.sh)")  # fmt: skip
    require(os.path.isdir("/etc/ceph"), "/etc/ceph (Debian package ceph-common)")
    from devtools.ceph import CephCluster

    cluster = CephCluster(workdir / "ceph")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def keystone(workdir):
    """Projects alpha and beta: a member, a reader each; the bootstrap admin; service users sharedfs and nova.
    Here, not in tests/openstack: the dashboard's browser tests sign in with it too (one Keystone per session)."""
    from devtools.keystone import Keystone

    server = Keystone(workdir / "keystone").start()
    for project in ("alpha", "beta"):
        server.user(f"{project}-member", project, ["member"])
        server.user(f"{project}-reader", project, ["reader"])
    server.user("sharedfs", "service", ["service"])  # validates tokens ([keystone_authtoken])
    server.user("nova", "service", ["service"])  # calls vendordata
    yield server
    server.stop()
