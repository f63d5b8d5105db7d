"""AgentConfig, read once from the INI file cloud-init writes (default /etc/sharedfs-agent/agent.conf)."""

from __future__ import annotations

import configparser
import grp
import os
import pwd
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import ConfigError

__all__ = ["AgentConfig", "load", "DEFAULT_PATH", "ENV_VAR"]

DEFAULT_PATH = "/etc/sharedfs-agent/agent.conf"
ENV_VAR = "SHAREDFS_AGENT_CONFIG"

# Where a mount may go unless the operator says otherwise; system directories are refused anyway.
DEFAULT_ALLOWED_ROOTS = ("/mnt", "/media", "/srv", "/home", "/data", "/shared", "/opt")


@dataclass(frozen=True)
class AgentConfig:
    source: str = "file"  # "file" (this issue) or "api"
    state_dir: str = "/var/lib/sharedfs-agent"  # ledger, last-known-good cache, status file
    fstab: str = "/etc/fstab"
    file_path: str = "/etc/sharedfs-agent/filesystems.json"  # [file] path
    allowed_roots: Tuple[str, ...] = DEFAULT_ALLOWED_ROOTS
    allow_suid: bool = False  # may an entry ask for suid? (nosuid is added otherwise)
    allow_dev: bool = False  # may an entry ask for dev? (nodev is added otherwise)
    allow_exec: bool = True  # when false, exec is refused and noexec added
    allow_nonempty: bool = False  # may a mount hide a non-empty directory?
    max_filesystems: int = 1000  # entries past this are refused, each with a reason
    mount_timeout: float = 30.0  # seconds for one mount helper, then its group is killed
    unmount_timeout: float = 15.0
    probe_timeout: float = 5.0  # seconds for a health probe (a stat in a child)
    mount_point_mode: int = 0o755  # for directories the agent creates
    mount_point_uid: int = 0
    mount_point_gid: int = 0
    use_systemd_scope: Optional[bool] = None  # None: when systemd is PID 1
    resync_interval: float = 300.0  # the daemon reconciles at least this often (repairs drift)
    # [api]
    api_url: str = ""  # e.g. https://sharedfs.example:8776
    api_token_file: str = "/etc/sharedfs-agent/token"  # mode 0600
    api_ca_bundle: str = ""  # CA bundle for the API's TLS certificate; empty: the system's
    api_wait: float = 60.0  # long-poll hold asked of the server (seconds)
    instance_id: str = ""  # empty: discovered (cloud-init, metadata service, config drive)
    project: str = ""
    metadata_url: str = "http://169.254.169.254"
    instance_data: str = "/run/cloud-init/instance-data.json"
    config_drive_dir: str = ""  # a mounted config drive; empty: look for the label config-2
    # [metrics]
    metrics_textfile: str = ""  # Prometheus node-exporter textfile; empty: none

    @property
    def ledger_path(self) -> str:
        return os.path.join(self.state_dir, "owned.json")

    @property
    def cache_path(self) -> str:
        return os.path.join(self.state_dir, "desired.json")

    @property
    def status_path(self) -> str:
        return os.path.join(self.state_dir, "status.json")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.state_dir, "lock")


_BOOL = {"1": True, "yes": True, "true": True, "on": True, "0": False, "no": False, "false": False, "off": False}

# section -> key -> (field name, parser); anything else in these sections is a typo and refused.
_KNOWN = {
    "agent": {
        "source": "source",
        "state_dir": "state_dir",
        "fstab": "fstab",
        "allowed_roots": "allowed_roots",
        "allow_suid": "allow_suid",
        "allow_dev": "allow_dev",
        "allow_exec": "allow_exec",
        "allow_nonempty": "allow_nonempty",
        "max_filesystems": "max_filesystems",
        "mount_timeout": "mount_timeout",
        "unmount_timeout": "unmount_timeout",
        "probe_timeout": "probe_timeout",
        "mount_point_mode": "mount_point_mode",
        "mount_point_owner": "mount_point_owner",
        "use_systemd_scope": "use_systemd_scope",
        "resync_interval": "resync_interval",
    },
    "file": {"path": "file_path"},
    "api": {
        "url": "api_url",
        "token_file": "api_token_file",
        "ca_bundle": "api_ca_bundle",
        "wait": "api_wait",
        "instance_id": "instance_id",
        "project": "project",
        "metadata_url": "metadata_url",
        "instance_data": "instance_data",
        "config_drive_dir": "config_drive_dir",
    },
    "metrics": {"textfile": "metrics_textfile"},
}


def _parse_value(section: str, key: str, value: str, kind: str):
    """kind is the field's annotation: "str", "bool", "Optional[bool]", "int" or "float"."""
    where = f"[{section}] {key} = {value!r}"
    value = value.strip()
    if kind in ("bool", "Optional[bool]"):
        if kind == "Optional[bool]" and value.lower() == "auto":
            return None
        if value.lower() not in _BOOL:
            raise ConfigError(f"{where}: expected true or false")
        return _BOOL[value.lower()]
    if kind == "int":
        try:
            number = int(value, 0)
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number") from None
        if number <= 0:
            raise ConfigError(f"{where}: must be positive")
        return number
    if kind == "float":
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number of seconds") from None
        if not 0 < number <= 3600:
            raise ConfigError(f"{where}: must be between 0 and 3600 seconds")
        return number
    return value


def _owner(section: str, value: str) -> Tuple[int, int]:
    user, _, group = value.strip().partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        gid = int(group) if group.isdigit() else (grp.getgrnam(group).gr_gid if group else 0)
    except KeyError as e:
        raise ConfigError(f"[{section}] mount_point_owner = {value!r}: unknown {e}") from None
    return uid, gid


def load(path: str) -> AgentConfig:
    """Read and check the whole file; every problem is a ConfigError that names the key."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (set {ENV_VAR} or --config)") from None
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise ConfigError(f"config file {path}: {e}") from None

    values: dict = {}
    hints = AgentConfig.__annotations__
    for section in parser.sections():
        known = _KNOWN.get(section)
        if known is None:
            raise ConfigError(f"{path}: unknown section [{section}]")
        for key, raw in parser.items(section):
            name = known.get(key)
            if name is None:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            if name == "allowed_roots":
                values[name] = _roots(section, raw)
            elif name == "mount_point_mode":
                try:
                    values[name] = int(raw.strip(), 8)
                except ValueError:
                    raise ConfigError(f"[{section}] mount_point_mode = {raw!r}: expected octal like 0755") from None
            elif name == "mount_point_owner":
                values["mount_point_uid"], values["mount_point_gid"] = _owner(section, raw)
            else:
                values[name] = _parse_value(section, key, raw, hints[name])
    if values.get("source", "file") not in ("file", "api"):
        raise ConfigError(f"[agent] source = {values['source']!r}: expected file or api")
    for name in ("state_dir", "fstab", "file_path", "api_token_file", "instance_data", "metrics_textfile"):
        if values.get(name) and not os.path.isabs(values[name]):
            raise ConfigError(f"{name} = {values[name]!r}: must be an absolute path")
    for name in ("api_url", "metadata_url"):
        if values.get(name) and not values[name].startswith(("http://", "https://")):
            raise ConfigError(f"{name} = {values[name]!r}: must be an http:// or https:// URL")
    if values.get("source") == "api" and not values.get("api_url"):
        raise ConfigError("[agent] source = api needs [api] url")
    return AgentConfig(**values)


def _roots(section: str, raw: str) -> Tuple[str, ...]:
    roots = tuple(raw.replace(",", " ").split())
    for root in roots:
        if not root.startswith("/") or os.path.normpath(root) != root or root == "/":
            raise ConfigError(f"[{section}] allowed_roots: {root!r} must be a normalised absolute path other than /")
    return roots
