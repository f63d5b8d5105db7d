"""AgentConfig, read once from the INI file cloud-init writes (default /etc/sharedfs-agent/agent.conf)."""

from __future__ import annotations

import configparser
import grp
import os
import pwd
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import ConfigError
from .records import dataclass, field
from .sources.base import Key, SourcePlugin  # the contract only: config never loads a source

__all__ = ["AgentConfig", "load", "DEFAULT_PATH", "ENV_VAR"]

DEFAULT_PATH = "/etc/sharedfs-agent/agent.conf"
ENV_VAR = "SHAREDFS_AGENT_CONFIG"

# Where a mount may go unless the operator says otherwise; system directories are refused anyway.
DEFAULT_ALLOWED_ROOTS = ("/mnt", "/media", "/srv", "/home", "/data", "/shared", "/opt")


@dataclass(frozen=True)
class AgentConfig:
    sources: Tuple[str, ...] = ("file",)  # [agent] source: the sources whose union is desired
    # Each source's section, every declared key present (defaults filled), for the sources in
    # use and any other section the file sets; sources.build() fills defaults for a missing one.
    source_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    state_dir: str = "/var/lib/sharedfs-agent"  # ledger, last-known-good caches, status file
    fstab: str = "/etc/fstab"
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
    # Where the credentials of entries reached by identity are written (root-only files, one per
    # filesystem, sharedfs-<name>.secret); what their mount options name.
    secret_dir: str = "/etc/ceph"
    # [metrics]
    metrics_textfile: str = ""  # Prometheus node-exporter textfile; empty: none

    @property
    def ledger_path(self) -> str:
        return os.path.join(self.state_dir, "owned.json")

    def cache_path(self, source: str) -> str:
        """One source's last-known-good document."""
        return os.path.join(self.state_dir, f"desired-{source}.json")

    @property
    def legacy_cache_path(self) -> str:
        """Where agents before several sources kept the one source's document."""
        return os.path.join(self.state_dir, "desired.json")

    @property
    def status_path(self) -> str:
        return os.path.join(self.state_dir, "status.json")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.state_dir, "lock")


_BOOL = {"1": True, "yes": True, "true": True, "on": True, "0": False, "no": False, "false": False, "off": False}

# The agent's own sections: key -> field name; anything else there is a typo and refused.
# Each source declares its own section (sources/<name>.py, `keys`).
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
        "secret_dir": "secret_dir",
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


def _secret_dir(section: str, raw: str) -> str:
    """An absolute, normalised path that fits in a mount option (it is named in one)."""
    value = raw.strip()
    if not re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", value) or os.path.normpath(value) != value or "/../" in value + "/":
        raise ConfigError(f"[{section}] secret_dir = {raw!r}: expected an absolute path of [A-Za-z0-9_.-] components")
    return value


def _owner(section: str, value: str) -> Tuple[int, int]:
    user, _, group = value.strip().partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        gid = int(group) if group.isdigit() else (grp.getgrnam(group).gr_gid if group else 0)
    except KeyError as e:
        raise ConfigError(f"[{section}] mount_point_owner = {value!r}: unknown {e}") from None
    return uid, gid


def load(path: str, plugins: Mapping[str, SourcePlugin]) -> AgentConfig:
    """Read and check the whole file; every problem is a ConfigError that names the key.
    plugins: the source registry (sources.registry()); each source's section is allowed too."""
    parser = _read(path)
    values: dict = {}
    settings: Dict[str, Dict[str, Any]] = {}
    for section in parser.sections():
        if section in _KNOWN:
            values.update(_agent_section(path, section, parser.items(section)))
        elif section in plugins:
            settings[section] = _source_section(path, section, parser.items(section), plugins[section].keys)
        else:
            raise ConfigError(f"{path}: unknown section [{section}]")
    names = _source_names(values.pop("source", "file"), plugins)
    for name in names:
        settings.setdefault(name, _defaults(plugins[name].keys))
        missing = [key for key, spec in plugins[name].keys.items() if spec.required and not settings[name][key]]
        if missing:
            raise ConfigError(f"[agent] source = {name} needs [{name}] {', '.join(missing)}")
    for name in ("state_dir", "fstab", "metrics_textfile"):
        _check_kind(f"{name} = {values.get(name)!r}", values.get(name), "path")
    return AgentConfig(sources=names, source_settings=settings, **values)


def _read(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (set {ENV_VAR} or --config)") from None
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise ConfigError(f"config file {path}: {e}") from None
    return parser


def _agent_section(path: str, section: str, items) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    hints = AgentConfig.__annotations__
    known = _KNOWN[section]
    for key, raw in items:
        name = known.get(key)
        if name is None:
            raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
        if name == "source":
            values[name] = raw
        elif name == "allowed_roots":
            values[name] = _roots(section, raw)
        elif name == "mount_point_mode":
            try:
                values[name] = int(raw.strip(), 8)
            except ValueError:
                raise ConfigError(f"[{section}] mount_point_mode = {raw!r}: expected octal like 0755") from None
        elif name == "secret_dir":
            values[name] = _secret_dir(section, raw)
        elif name == "mount_point_owner":
            values["mount_point_uid"], values["mount_point_gid"] = _owner(section, raw)
        else:
            values[name] = _parse_value(section, key, raw, hints[name])
    return values


def _source_names(raw: str, plugins: Mapping[str, SourcePlugin]) -> Tuple[str, ...]:
    """`source = api, file` (commas or white space): each a known source, none twice."""
    names = tuple(name for name in re.split(r"[\s,]+", raw) if name)
    if not names:
        raise ConfigError("[agent] source is empty: name at least one source")
    for name in names:
        if name not in plugins:
            raise ConfigError(f"[agent] source = {raw!r}: unknown source {name!r} (this agent knows: "
                              f"{', '.join(sorted(plugins))})")  # fmt: skip
        if names.count(name) > 1:
            raise ConfigError(f"[agent] source = {raw!r}: {name!r} is named twice")
    return names


def _defaults(keys: Mapping[str, Key]) -> Dict[str, Any]:
    return {key: spec.default for key, spec in keys.items()}


def _source_section(path: str, section: str, items, keys: Mapping[str, Key]) -> Dict[str, Any]:
    """A source's section: only the keys its plugin declares, each checked by its kind."""
    values = _defaults(keys)
    for key, raw in items:
        spec = keys.get(key)
        if spec is None:
            raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
        value = raw.strip()
        if spec.kind == "seconds":
            value = _parse_value(section, key, raw, "float")
        _check_kind(f"[{section}] {key} = {raw!r}", value, spec.kind)
        values[key] = value
    return values


def _check_kind(where: str, value: Any, kind: str) -> None:
    if not value:
        return  # empty: the default, or "none" where the key allows it
    if kind == "path" and not os.path.isabs(value):
        raise ConfigError(f"{where}: must be an absolute path")
    if kind == "url" and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: must be an http:// or https:// URL")


def _roots(section: str, raw: str) -> Tuple[str, ...]:
    roots = tuple(raw.replace(",", " ").split())
    for root in roots:
        if not root.startswith("/") or os.path.normpath(root) != root or root == "/":
            raise ConfigError(f"[{section}] allowed_roots: {root!r} must be a normalised absolute path other than /")
    return roots
