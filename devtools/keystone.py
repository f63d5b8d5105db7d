"""A real Keystone for tests: from PyPI in a cached venv, SQLite + fernet, served on 127.0.0.1, with projects and users.

The venv is made once per pinned requirements file (devtools/keystone-requirements.txt) under
SHAREDFS_TEST_CACHE (default /var/cache/sharedfs-tests; devtools/venvcache.py), so later runs start Keystone
in seconds. Keystone needs Python >= 3.11.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import requests

from .apiserver import free_port
from .venvcache import cached_venv, service_env, wsgi_server

REQUIREMENTS = Path(__file__).with_name("keystone-requirements.txt")
ADMIN_PASSWORD = "admin-secret"
PASSWORD = "secret"  # every test user's

_SERVE = wsgi_server("from keystone.server.wsgi import initialize_public_application\n"
                     "application = initialize_public_application()")


def venv() -> Path:
    """The cached Keystone venv, made first if needed (about two minutes)."""
    return cached_venv("keystone", REQUIREMENTS)


@dataclass(frozen=True)
class User:
    name: str
    project: str  # the project its token is scoped to
    roles: tuple


class Keystone:
    """keystone-manage bootstrap + a server process on a free port; stop() ends it by pid."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.venv = venv()
        self.conf = self.base / "keystone.conf"
        self.proc: Optional[subprocess.Popen] = None
        self.project_ids: Dict[str, str] = {}
        self.user_ids: Dict[str, str] = {}

    def _manage(self, *args: str) -> None:
        subprocess.run([str(self.venv / "bin/keystone-manage"), "--config-file", str(self.conf), *args],
                       env=service_env(), check=True, capture_output=True, timeout=300)  # fmt: skip

    def start(self) -> Keystone:
        for sub in ("fernet", "credential"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"[DEFAULT]\nlog_file = {self.base / 'keystone.log'}\n"
            f"[database]\nconnection = sqlite:///{self.base / 'keystone.db'}\n"
            f"[fernet_tokens]\nkey_repository = {self.base / 'fernet'}\n"
            f"[credential]\nkey_repository = {self.base / 'credential'}\n"
            "[token]\nprovider = fernet\n"
        )
        self._manage("db_sync")
        self._manage("fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
        self._manage("credential_setup", "--keystone-user", "root", "--keystone-group", "root")
        self._manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", "RegionOne",
                     "--bootstrap-admin-url", self.url, "--bootstrap-public-url", self.url,
                     "--bootstrap-internal-url", self.url)  # fmt: skip
        env = service_env(OS_KEYSTONE_CONFIG_FILES=str(self.conf))
        self.log = open(self.base / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(self.venv / "bin/python"), "-c", _SERVE, str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Keystone did not start; see {self.log.name} and {self.base / 'keystone.log'}")
            time.sleep(0.1)
        self._admin = self.token("admin", "admin", password=ADMIN_PASSWORD)
        self.project_ids["admin"] = self._find("projects", "admin")
        self.user_ids["admin"] = self._find("users", "admin")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            self.proc = None

    # -- identity fixtures through Keystone's own API -------------------------------------------

    def _call(self, method: str, path: str, **kw) -> dict:
        response = requests.request(method, self.url + path, headers={"X-Auth-Token": self._admin}, timeout=30, **kw)
        response.raise_for_status()
        return response.json() if response.content else {}

    def _find(self, kind: str, name: str) -> str:
        return self._call("GET", f"/{kind}", params={"name": name})[kind][0]["id"]

    def role_id(self, name: str) -> str:
        found = self._call("GET", "/roles", params={"name": name})["roles"]
        if found:
            return found[0]["id"]
        return self._call("POST", "/roles", json={"role": {"name": name}})["role"]["id"]

    def project(self, name: str) -> str:
        if name not in self.project_ids:
            body = {"project": {"name": name, "domain_id": "default"}}
            self.project_ids[name] = self._call("POST", "/projects", json=body)["project"]["id"]
        return self.project_ids[name]

    def user(self, name: str, project: str, roles: List[str]) -> str:
        """A user with these roles on this project (made once)."""
        if name not in self.user_ids:
            body = {"user": {"name": name, "password": PASSWORD, "domain_id": "default"}}
            self.user_ids[name] = self._call("POST", "/users", json=body)["user"]["id"]
        for role in roles:
            self._call("PUT", f"/projects/{self.project(project)}/users/{self.user_ids[name]}/roles/{self.role_id(role)}")
        return self.user_ids[name]

    def token(self, user: str, project: str, password: str = PASSWORD) -> str:
        """A project-scoped token for user."""
        body = {"auth": {
            "identity": {"methods": ["password"],
                         "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}  # fmt: skip
        response = requests.post(self.url + "/auth/tokens", json=body, timeout=30)
        response.raise_for_status()
        return response.headers["X-Subject-Token"]

    def revoke(self, token: str) -> None:
        headers = {"X-Auth-Token": self._admin, "X-Subject-Token": token}
        requests.delete(self.url + "/auth/tokens", headers=headers, timeout=30).raise_for_status()

    def service(self, service_type: str, name: str, url: str) -> None:
        """A catalog entry: service_type at url (public, internal, admin) in RegionOne."""
        service = self._call("POST", "/services", json={"service": {"type": service_type, "name": name}})["service"]
        for interface in ("public", "internal", "admin"):
            self._call("POST", "/endpoints", json={"endpoint": {"service_id": service["id"], "interface": interface,
                                                                "url": url, "region_id": "RegionOne"}})  # fmt: skip

    def write_config(self, path: Path, user: str = "sharedfs", extra: str = "") -> Path:
        """An oslo.config file for sharedfs-api --openstack-config: [keystone_authtoken] as `user`, then extra."""
        lines = ["[keystone_authtoken]", *(f"{k} = {v}" for k, v in self.authtoken_options(user).items())]
        path.write_text("\n".join(lines) + "\n" + extra)
        return path

    def authtoken_options(self, user: str, project: str = "service") -> Dict[str, str]:
        """The [keystone_authtoken] options for a service whose own user is `user`."""
        return {
            "www_authenticate_uri": self.url,
            "auth_url": self.url,
            "auth_type": "password",
            "username": user,
            "password": PASSWORD,
            "project_name": project,
            "user_domain_id": "default",
            "project_domain_id": "default",
        }
