"""The trust boundary: a desired-state document becomes valid Filesystems and reasoned Rejections."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from . import wire
from .config import AgentConfig
from .errors import InvalidEntry, SourceUnavailable
from .model import Access, Filesystem, Rejection
from .mounters import Mounter
from .records import dataclass

__all__ = ["Desired", "parse_document", "check_mount_point", "secret_path", "SECRET_PREFIX", "SECRET_SUFFIX"]

# The agent's secret files: secret_dir/sharedfs-<entry name>.secret; only files so named are removed.
SECRET_PREFIX = "sharedfs-"
SECRET_SUFFIX = ".secret"

# Asking for these needs a config setting; without it the restrictive twin is added.
_PERMISSIVE = {"suid": ("nosuid", "allow_suid"), "dev": ("nodev", "allow_dev"), "exec": ("noexec", "allow_exec")}


@dataclass(frozen=True)
class Desired:
    """One validated document: what to mount, and what was refused with why."""

    filesystems: Tuple[Filesystem, ...]
    rejections: Tuple[Rejection, ...]


def check_mount_point(path: Any, config: AgentConfig) -> str:
    """wire.check_mount_point with this agent's allowed roots; InvalidEntry when refused."""
    try:
        return wire.check_mount_point(path, config.allowed_roots)
    except ValueError as e:
        raise InvalidEntry(str(e)) from None


def _options(raw: Any, mounter: Mounter, config: AgentConfig) -> Tuple[List[str], Optional[Access]]:
    if raw is None:
        items: List[Any] = []
    elif isinstance(raw, str):
        items = [item for item in raw.split(",") if item] if raw else []
    elif isinstance(raw, list):
        items = raw
    else:
        raise InvalidEntry("mount_options must be a list of strings")
    options: List[str] = []
    access = None
    for item in items:
        if not isinstance(item, str) or not wire.OPTION.fullmatch(item):
            raise InvalidEntry(f"mount option {item!r} has characters an option may not have")
        if item in ("ro", "rw"):
            if access is not None and access.value != item:
                raise InvalidEntry("mount_options ask for both ro and rw")
            access = Access(item)
            continue
        if item in _PERMISSIVE:
            restrictive, setting = _PERMISSIVE[item]
            if not getattr(config, setting):
                raise InvalidEntry(f"mount option {item!r} is refused (set [agent] {setting} = true to allow it)")
        else:
            mounter.check_option(item)
        if item not in options:
            options.append(item)
    for permissive, (restrictive, _) in _PERMISSIVE.items():
        if permissive in options:
            if restrictive in options:
                raise InvalidEntry(f"mount_options ask for both {permissive} and {restrictive}")
        elif restrictive not in options and not (permissive == "exec" and config.allow_exec):
            options.append(restrictive)
    return options, access


def _entry(raw: Any, mounters: Mapping[str, Mounter], config: AgentConfig) -> Filesystem:
    if not isinstance(raw, dict):
        raise InvalidEntry("entry is not an object")
    fs_type = raw.get("fs_type")
    mounter = mounters.get(fs_type) if isinstance(fs_type, str) else None
    if mounter is None:
        raise InvalidEntry(f"unknown fs_type {fs_type!r} (this agent knows: {', '.join(sorted(mounters))})")
    export = raw.get("export")
    if not isinstance(export, str) or not export or len(export) > wire.MAX_PATH or wire.CONTROL.search(export):
        raise InvalidEntry("export must be a non-empty string without control characters")
    export = mounter.check_export(export)
    mount_point = check_mount_point(raw.get("mount_point"), config)
    mounter.check_mount_point(mount_point)
    options, access = _options(raw.get("mount_options"), mounter, config)
    if raw.get("access") is not None:
        if raw["access"] not in ("rw", "ro"):
            raise InvalidEntry(f"access {raw['access']!r} is not rw or ro")
        if access is not None and access.value != raw["access"]:
            raise InvalidEntry("access and mount_options disagree on ro/rw")
        access = Access(raw["access"])
    allow_nonempty = raw.get("allow_nonempty", False)
    if not isinstance(allow_nonempty, bool):
        raise InvalidEntry("allow_nonempty must be true or false")
    secret = _secret(raw, mounter, options, config)
    return Filesystem(
        name=raw["name"],
        fs_type=fs_type,
        export=export,
        mount_point=mount_point,
        options=tuple(options),
        access=access or Access.RW,
        allow_nonempty=allow_nonempty or config.allow_nonempty,
        secret=secret,
    )


def secret_path(config: AgentConfig, name: str) -> str:
    """The agent's file for one entry's secret (entry names are wire.ENTRY_NAME: a safe file name)."""
    return f"{config.secret_dir}/{SECRET_PREFIX}{name}{SECRET_SUFFIX}"


def _secret(raw: dict, mounter: Mounter, options: List[str], config: AgentConfig) -> str:
    """The entry's secret, if any; its file's option is added to `options` (the file is the agent's
    to write, so the entry may not name one itself). The value is never quoted in an error."""
    secret = raw.get(wire.SECRET_KEY)
    if secret is None:
        return ""
    if not isinstance(secret, str) or not wire.SECRET.fullmatch(secret):
        raise InvalidEntry(f"secret is not {wire.SECRET.pattern} (its value is not shown)")
    if not mounter.secret_option:
        raise InvalidEntry(f"fs_type {mounter.fs_type} takes no secret")
    if any(o.split("=", 1)[0] == mounter.secret_option for o in options):
        raise InvalidEntry(f"an entry with a secret may not name its own {mounter.secret_option}")
    options.append(f"{mounter.secret_option}={secret_path(config, raw['name'])}")
    return secret


def _label(raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and wire.ENTRY_NAME.fullmatch(name) else f"#{index}"


def _safe_mount_point(raw: Any, config: AgentConfig):
    """The mount point of a refused entry, if it is valid, so the planner leaves it alone."""
    try:
        return check_mount_point(raw.get("mount_point"), config) if isinstance(raw, dict) else None
    except InvalidEntry:
        return None


def parse_document(doc: Any, mounters: Mapping[str, Mounter], config: AgentConfig) -> Desired:
    """Validate a whole document. A document that is not {"filesystems": [...]} is garbage and
    raises SourceUnavailable (never read as "nothing attached"); a bad entry is refused alone."""
    if not isinstance(doc, dict) or not isinstance(doc.get(wire.DOCUMENT_KEY), list):
        raise SourceUnavailable('desired state is not a JSON object with a "filesystems" list')
    accepted: List[Filesystem] = []
    refused: List[Rejection] = []
    names: Set[str] = set()
    by_mount_point: Dict[str, str] = {}
    for index, raw in enumerate(doc[wire.DOCUMENT_KEY]):
        label = _label(raw, index)
        try:
            if label.startswith("#"):
                raise InvalidEntry("name is missing or not [A-Za-z0-9][A-Za-z0-9._-]* (at most 255)")
            if index >= config.max_filesystems:
                raise InvalidEntry(f"more than {config.max_filesystems} filesystems (set [agent] max_filesystems)")
            if label in names:
                raise InvalidEntry(f"name {label!r} appears twice")
            fs = _entry(raw, mounters, config)
            if fs.mount_point in by_mount_point:
                raise InvalidEntry(
                    f"mount_point {fs.mount_point!r} is already used by {by_mount_point[fs.mount_point]!r}"
                )
        except InvalidEntry as e:
            refused.append(Rejection(label, str(e), _safe_mount_point(raw, config)))
            names.add(label)
            continue
        names.add(fs.name)
        by_mount_point[fs.mount_point] = fs.name
        accepted.append(fs)
    return Desired(tuple(accepted), tuple(refused))
