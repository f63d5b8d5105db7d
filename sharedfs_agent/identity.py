"""Who am I: instance id and project (config, cloud-init, metadata service, config drive) and my addresses."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
from typing import Any, Callable, List, Mapping, Optional, Tuple

from . import httpclient, wire
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
    try:
        # Never through HTTP(S)_PROXY: the metadata address is link-local.
        status, _, body = httpclient.exchange(f"{url.rstrip('/')}/{_META}", timeout=2.0, use_proxy=False)
        meta = json.loads(body) if status == 200 else None
    except (httpclient.BadAnswer, OSError, ValueError):
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
    import tempfile  # only when a config drive is looked for (the idle daemon never loads it)

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
    try:
        candidates = _netlink_addresses()
    except OSError as e:  # no netlink (an unusual sandbox): psutil reads the same another way
        log.debug("netlink: %s; asking psutil", e)
        candidates = _psutil_addresses()
    found = set()
    for address in candidates:
        try:
            found.add(wire.check_address(address))  # the API's rule: plain unicast only
        except ValueError:
            continue  # loopback, link-local and the like
    if len(found) > wire.MAX_ADDRESSES:
        log.warning("%d addresses; registering the first %d (the API's cap)", len(found), wire.MAX_ADDRESSES)
    return sorted(found)[: wire.MAX_ADDRESSES]


_RTM_GETADDR, _NLMSG_DONE, _NLMSG_ERROR = 22, 3, 2
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_IFF_UP = 0x1


def _netlink_addresses() -> List[str]:
    """Every address of every interface that is up, from one RTM_GETADDR dump (rtnetlink(7)).
    Not psutil: importing it costs an idle daemon some 3 MB, for a list the kernel gives here."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        request = struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(struct.pack("=IHHII", 16 + len(request), _RTM_GETADDR, _NLM_F_REQUEST_DUMP, 1, 0) + request)
        found: List[str] = []
        up: dict = {}
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < 16:
                    raise OSError("netlink RTM_GETADDR answered with an error")
                family, _, _, _, index = struct.unpack_from("=BBBBI", data, offset + 16)
                attributes: dict = {}
                at, end = offset + 24, offset + length
                while at + 4 <= end:
                    size, kind = struct.unpack_from("=HH", data, at)
                    if size < 4:
                        break
                    attributes[kind] = data[at + 4 : at + size]
                    at += (size + 3) & ~3
                # IPv4: IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on a point-to-point link).
                raw = attributes.get(_IFA_LOCAL) or attributes.get(_IFA_ADDRESS)
                if raw and family in (socket.AF_INET, socket.AF_INET6):
                    if index not in up:
                        up[index] = _is_up(index)
                    if up[index]:
                        found.append(socket.inet_ntop(family, raw))
                offset += (length + 3) & ~3


def _is_up(index: int) -> bool:
    """IFF_UP in /sys/class/net/NAME/flags, as psutil's isup; an interface that cannot be read counts as up."""
    try:
        with open(f"/sys/class/net/{socket.if_indextoname(index)}/flags") as f:
            return bool(int(f.read().strip(), 16) & _IFF_UP)
    except (OSError, ValueError):
        return True


def _psutil_addresses() -> List[str]:
    import psutil

    stats = psutil.net_if_stats()
    return [addr.address for name, addrs in psutil.net_if_addrs().items()
            if name not in stats or stats[name].isup for addr in addrs]  # fmt: skip
