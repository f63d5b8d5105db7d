"""Who am I: instance id and project (config, cloud-init, metadata service, config drive) and my addresses."""

from __future__ import annotations

import http.client
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from typing import Any, Callable, List, Mapping, Optional, Tuple

import psutil

from . import wire
from .errors import ConfigError
from .host import commands

__all__ = ["Identity", "discover", "addresses", "metadata_service", "config_drive"]

log = logging.getLogger(__name__)

Identity = Tuple[str, str]  # (instance_id, project)
_META = "openstack/latest/meta_data.json"


def _from_instance_data(settings: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    """cloud-init's /run/cloud-init/instance-data.json: v1.instance_id, ds.meta_data.project_id."""
    try:
        with open(settings["instance_data"], encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None, None
    v1 = data.get("v1") if isinstance(data, dict) else None
    meta = (data.get("ds") or {}).get("meta_data") if isinstance(data, dict) else None
    instance = v1.get("instance_id") if isinstance(v1, dict) else None
    project = meta.get("project_id") if isinstance(meta, dict) else None
    return _str(instance), _str(project)


def metadata_service(url: str) -> Optional[dict]:
    """`openstack/latest/meta_data.json` from OpenStack's metadata service, or None when it does
    not answer with a JSON object: 2 s timeout, and never through a proxy (guest-agent#283)."""
    # An empty ProxyHandler ignores HTTP(S)_PROXY: the metadata address is link-local.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url.rstrip('/')}/{_META}", timeout=2.0) as answer:
            meta = json.loads(answer.read(1 << 20))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def config_drive(directory: str = "") -> Optional[dict]:
    """`openstack/latest/meta_data.json` from a config drive: the given directory, or the device
    labelled config-2 mounted read-only for the read; None when there is none or it is unreadable."""
    if directory:
        return _read_meta(directory)
    device = "/dev/disk/by-label/config-2"
    if not os.path.exists(device):
        return None
    with tempfile.TemporaryDirectory(prefix="sharedfs-config-drive-") as mount_point:
        mounted = commands.run(["mount", "-o", "ro,nosuid,nodev,noexec", device, mount_point], timeout=10)
        if not mounted.ok:
            log.warning("config drive %s: %s", device, mounted.summary())
            return None
        try:
            return _read_meta(mount_point)
        finally:
            commands.run(["umount", mount_point], timeout=10)


def _read_meta(directory: str) -> Optional[dict]:
    try:
        with open(os.path.join(directory, _META), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _ids(meta: Optional[dict]) -> Tuple[Optional[str], Optional[str]]:
    return (_str(meta.get("uuid")), _str(meta.get("project_id"))) if meta else (None, None)


def _from_metadata_service(settings: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    return _ids(metadata_service(settings["metadata_url"]))


def _from_config_drive(settings: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    return _ids(config_drive(settings["config_drive_dir"]))


def _str(value) -> Optional[str]:
    return value if isinstance(value, str) and value else None


SOURCES: List[Tuple[str, Callable[[Mapping[str, Any]], Tuple[Optional[str], Optional[str]]]]] = [
    ("cloud-init instance data", _from_instance_data),
    ("metadata service", _from_metadata_service),
    ("config drive", _from_config_drive),
]


def discover(settings: Mapping[str, Any]) -> Identity:
    """settings: the [api] section. Config first; then each source in turn fills what is still missing."""
    instance, project = settings["instance_id"] or None, settings["project"] or None
    for name, source in SOURCES:
        if instance and project:
            break
        found_instance, found_project = source(settings)
        if found_instance or found_project:
            log.info("identity from %s: instance %s, project %s", name, found_instance, found_project)
        instance, project = instance or found_instance, project or found_project
    if not (instance and project):
        raise ConfigError("cannot tell this instance's id and project: set [api] instance_id and project "
                          "(no cloud-init instance data, metadata service or config drive answered)")  # fmt: skip
    return instance, project


def addresses() -> List[str]:
    """This instance's addresses on interfaces that are up that the API accepts (wire.check_address)."""
    stats = psutil.net_if_stats()
    found = set()
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            try:
                found.add(wire.check_address(addr.address))  # the API's rule: plain unicast only
            except ValueError:
                continue  # MAC addresses, loopback, link-local (with its %zone) and the like
    if len(found) > wire.MAX_ADDRESSES:
        log.warning("%d addresses; registering the first %d (the API's cap)", len(found), wire.MAX_ADDRESSES)
    return sorted(found)[: wire.MAX_ADDRESSES]
