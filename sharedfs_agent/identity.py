"""Who am I: enrollment by Nova's vendordata, instance id and project (config, cloud-init, metadata service, config drive), my addresses."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import httpclient, wire
from .errors import ConfigError
from .host import commands
from .records import dataclass

__all__ = ["Identity", "Enrollment", "discover", "addresses", "vendordata", "check_enrollment", "metadata_service",
           "config_drive"]

log = logging.getLogger(__name__)

Identity = Tuple[str, str]  # (instance_id, project)
_META = "openstack/latest/meta_data.json"
_VENDOR_DATA = "openstack/latest/vendor_data2.json"
_MAX_METADATA_BYTES = 1 << 20


@dataclass(frozen=True)
class Enrollment:
    """What sharedfs-api handed this instance through Nova's vendordata (wire.VENDORDATA_KEYS)."""

    api_url: str
    token: str
    project: str
    instance_id: str
    ca: Optional[str] = None  # a PEM bundle for the API's certificate


def check_enrollment(value: Any, with_token: bool = True) -> Enrollment:
    """The trust boundary for what the metadata service relays: every value by its wire pattern,
    or ValueError naming the one that is wrong (nothing of it is used then). Without with_token:
    an enrollment kept on disk, whose token is in the token file (its token is "")."""
    if not isinstance(value, dict):
        raise ValueError("not an object")
    ca = value.get("ca")
    if ca is not None:
        if not isinstance(ca, str) or len(ca) > wire.MAX_CA_BYTES:
            raise ValueError(f"ca must be a PEM bundle of at most {wire.MAX_CA_BYTES} bytes")
        ca = ca.strip() + "\n"
        wire.check_pattern("ca", ca, wire.CA_PEM)
        import ssl  # only when vendordata hands a CA: the agent loads ssl only for https (httpclient.py)

        try:
            ssl.create_default_context(cadata=ca)  # the form is not enough: OpenSSL must load it
        except ssl.SSLError as e:
            raise ValueError(f"ca is not a certificate OpenSSL can load: {e.reason}") from None
    return Enrollment(
        api_url=wire.check_pattern("api_url", value.get("api_url"), wire.API_URL),
        token=_check_secret(value.get("token")) if with_token else "",
        project=wire.check_pattern("project", value.get("project"), wire.IDENT),
        instance_id=wire.check_pattern("instance_id", value.get("instance_id"), wire.IDENT),
        ca=ca,
    )


def _check_secret(token: Any) -> str:
    if not isinstance(token, str) or not wire.TOKEN.fullmatch(token):
        raise ValueError(f"token must match {wire.TOKEN.pattern}")  # never echo a credential
    return token


def _metadata_service_files(settings: Mapping[str, Any], names: Sequence[str]) -> Dict[str, bytes]:
    """Each named file the metadata service serves (200 only): short timeouts, and never through a
    proxy (guest-agent#283): the metadata address is link-local."""
    url = settings["metadata_url"].rstrip("/")
    found = {}
    for name in names:
        try:
            status, _, body = httpclient.exchange(f"{url}/{name}", timeout=2.0, use_proxy=False)
        except (httpclient.BadAnswer, OSError, ValueError):
            continue
        if status == 200 and len(body) <= _MAX_METADATA_BYTES:
            found[name] = body
    return found


def _config_drive_files(settings: Mapping[str, Any], names: Sequence[str]) -> Dict[str, bytes]:
    """Each named file on a config drive: the given directory, or the device labelled config-2
    mounted read-only for the read."""
    if settings["config_drive_dir"]:
        return _read_files(settings["config_drive_dir"], names)
    device = "/dev/disk/by-label/config-2"
    if not os.path.exists(device):
        return {}
    import tempfile  # only when a config drive is looked for

    with tempfile.TemporaryDirectory(prefix="sharedfs-config-drive-") as mount_point:
        mounted = commands.run(["mount", "-o", "ro,nosuid,nodev,noexec", device, mount_point], timeout=10)
        if not mounted.ok:
            log.warning("config drive %s: %s", device, mounted.summary())
            return {}
        try:
            return _read_files(mount_point, names)
        finally:
            commands.run(["umount", mount_point], timeout=10)


def _read_files(directory: str, names: Sequence[str]) -> Dict[str, bytes]:
    found = {}
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                found[name] = f.read(_MAX_METADATA_BYTES)
        except OSError:
            continue
    return found


def vendordata(settings: Mapping[str, Any]) -> Optional[Enrollment]:
    """Our entry in vendor_data2.json ([api] vendordata_provider), from the metadata service, else
    a config drive; None when neither has one. An entry that fails the checks is logged and
    ignored, as if absent: a relay of the metadata service must not choose our API or token."""
    provider = settings["vendordata_provider"]
    if not provider:
        return None  # enrollment by vendordata turned off
    for where, read in (("metadata service", _metadata_service_files), ("config drive", _config_drive_files)):
        raw = read(settings, [_VENDOR_DATA]).get(_VENDOR_DATA)
        if raw is None:
            continue
        try:
            document = json.loads(raw)
        except ValueError:
            log.warning("vendor_data2.json from the %s is not JSON; ignored", where)
            continue
        if not isinstance(document, dict) or provider not in document:
            continue  # vendordata for other providers only
        try:
            enrollment = check_enrollment(document[provider])
        except ValueError as e:
            log.warning("vendor_data2.json from the %s: %r refused: %s", where, provider, e)
            continue
        log.info("enrolled by vendordata (%s): instance %s, project %s, API %s",
                 where, enrollment.instance_id, enrollment.project, enrollment.api_url)  # fmt: skip
        return enrollment
    return None




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
    not answer with a JSON object (2 s timeout, never through a proxy)."""
    return _object(_metadata_service_files({"metadata_url": url}, [_META]).get(_META))


def config_drive(directory: str = "") -> Optional[dict]:
    """`openstack/latest/meta_data.json` from a config drive (the given directory, or the device
    labelled config-2 mounted read-only for the read); None when there is none or it is unreadable."""
    return _object(_config_drive_files({"config_drive_dir": directory}, [_META]).get(_META))


def _object(raw: Optional[bytes]) -> Optional[dict]:
    try:
        document = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _from_metadata_service(settings: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    """OpenStack's metadata service: meta_data.json's uuid and project_id."""
    return _meta(_metadata_service_files(settings, [_META]).get(_META))


def _from_config_drive(settings: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    """A config drive's meta_data.json: uuid and project_id."""
    return _meta(_config_drive_files(settings, [_META]).get(_META))


def _meta(raw: Optional[bytes]) -> Tuple[Optional[str], Optional[str]]:
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        return None, None
    return (_str(meta.get("uuid")), _str(meta.get("project_id"))) if isinstance(meta, dict) else (None, None)


def _str(value) -> Optional[str]:
    return value if isinstance(value, str) and value else None


SOURCES: List[Tuple[str, Callable[[Mapping[str, Any]], Tuple[Optional[str], Optional[str]]]]] = [
    ("cloud-init instance data", _from_instance_data),
    ("metadata service", _from_metadata_service),
    ("config drive", _from_config_drive),
]


def discover(settings: Mapping[str, Any], enrolled: Optional[Identity] = None) -> Identity:
    """settings: the [api] section. Config first, then the identity vendordata enrolled (when
    given); then each source in turn fills what is still missing."""
    instance, project = settings["instance_id"] or None, settings["project"] or None
    if enrolled is not None:
        instance, project = instance or enrolled[0], project or enrolled[1]
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
