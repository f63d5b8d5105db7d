"""The whole system on one machine: glusterd, sharedfs-api (glusterfs driver) and one instance's agent daemon.

Used by the demo, the integration tests and bench/convergence.py. The agent runs in a private
mount namespace with its own fstab and state, as instance INSTANCE of project PROJECT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .apiserver import ApiServer
from .gluster import Glusterd
from .metadata import MetadataService
from .namespace import MountNamespace

VENDORDATA_SECRET = "vendordata-secret-of-the-local-stack"


class LocalStack:
    def __init__(self, base: Path, glusterd: Optional[Glusterd] = None, project: str = "p1",
                 instance: str = "vm1", agent_settings: str = "", quota: bool = True,
                 vendordata: bool = False) -> None:  # fmt: skip
        self.base = base
        self.own_glusterd = glusterd is None
        self.glusterd = glusterd or Glusterd(base / "glusterd")
        self.project, self.instance = project, instance
        self.agent_settings = agent_settings  # extra [agent] lines
        self.quota = quota
        # vendordata: the agent is given nothing but a metadata service; its API, token and
        # identity come from vendor_data2.json, which the API's POST /v1.1/vendordata makes.
        self.vendordata = vendordata
        self.metadata: Optional[MetadataService] = None
        self.root = base / "mnt"
        self.fstab = base / "fstab"
        self.config = base / "agent.conf"
        self.log_path = base / "agent.log"
        self.api: Optional[ApiServer] = None
        self.ns: Optional[MountNamespace] = None
        self.agent: Optional[subprocess.Popen] = None

    def start(self) -> LocalStack:
        self.root.mkdir(parents=True)
        if self.own_glusterd:
            self.glusterd.start()
        options = self.glusterd.driver_options(self.base / "bricks", self.quota)
        api_args = []
        if self.vendordata:
            (self.base / "vendordata-secret").write_text(VENDORDATA_SECRET + "\n")
            api_args = ["--vendordata-secret-file", str(self.base / "vendordata-secret")]
        self.api = ApiServer(self.base / "api", driver="glusterfs", driver_opts=options, extra_args=api_args).start()
        self.admin = self.api.token("admin")
        token_file = self.base / "token"
        if self.vendordata:
            self.metadata = MetadataService(self.project, self.instance, {"sharedfs": self.api.url + "/v1.1/vendordata"},
                                            VENDORDATA_SECRET).start()  # fmt: skip
            api_section = (f"metadata_url = {self.metadata.url}\ntoken_file = {token_file}\n"
                           f"instance_data = {self.base}/no-instance-data\nconfig_drive_dir = {self.base}/no-drive\n")  # fmt: skip
        else:
            token_file.write_text(self.api.token("instance", self.project, self.instance) + "\n")
            os.chmod(token_file, 0o600)
            api_section = (f"url = {self.api.url}\ntoken_file = {token_file}\ninstance_id = {self.instance}\n"
                           f"project = {self.project}\n")  # fmt: skip
        self.fstab.write_text(
            "# the instance's own fstab: the agent keeps every byte of this\nUUID=0a1b / ext4 defaults 0 1\n"
        )
        self.config.write_text(
            f"[agent]\nsource = api\nstate_dir = {self.base}/state\nfstab = {self.fstab}\nallowed_roots = {self.root}\n"
            f"{self.agent_settings}[api]\n{api_section}"
        )
        self.ns = MountNamespace()
        self.start_agent()
        return self

    def start_agent(self) -> None:
        with open(self.log_path, "ab") as log:
            self.agent = self.ns.popen(self.agent_command("run"), stdout=log, stderr=subprocess.STDOUT)

    def agent_command(self, *args: str) -> list:
        return [sys.executable, "-m", "sharedfs_agent", *args, "--config", str(self.config)]

    def call(self, method: str, path: str, **kw):
        return self.api.call(method, path, self.admin, **kw)

    def mount_point(self, name: str) -> str:
        return str(self.root / name)

    def create(self, name: str, scope: str = "instance", size: str = "1Gb"):
        entry = {"size": size, "scope": scope, "mount_point": self.mount_point(name)}
        response = self.call("PUT", f"/v1.1/{self.project}/os-filesystem/{name}", json={"fs_entry": entry})
        assert response.status_code in (201, 202), response.text  # 202: the server's worker creates it
        entry = self.api.settled(self.admin, self.project, name)
        assert entry is not None and entry["status"] == "available", entry
        return response

    def mounted(self, name: str) -> bool:
        return self.mount_point(name) in self.ns.mounts()

    def reported(self, name: str) -> Optional[str]:
        response = self.call("GET", f"/v1.1/{self.project}/os-filesystem/{name}/instances")
        rows = response.json().get("instances", []) if response.status_code == 200 else []
        return {row["id"]: row["mount_state"] for row in rows}.get(self.instance)

    def stop_agent(self) -> Optional[int]:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(20)
        return self.agent.returncode if self.agent is not None else None

    def stop(self) -> None:
        """Stop the agent (its mounts stay, by design), unmount in the namespace, stop the rest."""
        self.stop_agent()
        if self.ns is not None:
            self.ns.close(str(self.base))
        if self.api is not None:
            self.api.stop()
        if self.metadata is not None:
            self.metadata.stop()
        if self.own_glusterd:
            self.glusterd.stop()
