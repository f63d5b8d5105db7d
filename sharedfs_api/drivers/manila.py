"""`manila`: each filesystem is an OpenStack Manila share, its access list that share's `ip` rules."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Set, Tuple

import requests

from sharedfs_agent import wire
from sharedfs_agent.mounters import BUILTIN as MOUNTERS

from ..errors import DriverError
from .base import Driver, FsSpec

__all__ = ["ManilaDriver", "Http", "size_gib", "choose_export", "mount_options_of", "MICROVERSION", "TAG"]

log = logging.getLogger(__name__)

# 2.51 (Manila's Train release): export locations say `preferred` (2.14), access rules have states
# (2.28) and are listed per share by GET /share-access-rules (2.45), user messages exist (2.37).
# The project id stays in the URL, as every Manila release before 2.60 requires.
MICROVERSION = "2.51"
GIB = 1 << 30
# The share metadata that marks a share as this backend's: `sharedfs=<project>/<name>`.
TAG = "sharedfs"
# Share protocols sharedfs can hand to an agent, and the agent's fs_type for each.
PROTOCOLS = {"NFS": "nfs", "CEPHFS": "cephfs", "GLUSTERFS": "glusterfs"}
PROJECT_ID = re.compile(r"[0-9a-fA-F-]{1,64}")
SHARE_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
MOVING = ("queued_to_apply", "applying", "queued_to_deny", "denying", "updating", "queuing_to_update")
KEYSTONE_OPTIONS = ("auth_url", "username", "user_id", "password", "project_name", "project_id", "user_domain_name",
                    "user_domain_id", "project_domain_name", "project_domain_id")  # fmt: skip
MAX_MESSAGE = 300


def size_gib(size_bytes: int) -> int:
    """Manila sizes are whole GiB: rounded up, at least 1 (a 1500 MiB filesystem is a 2 GiB share)."""
    return max(1, math.ceil(size_bytes / GIB))


def clean(text: Any) -> str:
    """Manila's words for a status or a log: one line, printable, bounded."""
    flat = re.sub(r"[^\x20-\x7e]+", " ", str(text)).strip()
    return flat[:MAX_MESSAGE] + ("…" if len(flat) > MAX_MESSAGE else "")


def choose_export(locations: List[Any], fs_type: str) -> str:
    """The preferred location that is not admin-only, else the first non-admin one, else the first.
    Checked by the agent's own mounter for fs_type: a location that would not pass there never lands."""
    if not isinstance(locations, list) or not locations:
        raise DriverError("Manila lists no export location for the share")
    good = [loc for loc in locations if isinstance(loc, dict) and isinstance(loc.get("path"), str)]
    if len(good) != len(locations):
        raise DriverError("Manila returned an export location without a path")
    users = [loc for loc in good if loc.get("is_admin_only") is not True]
    chosen = next((loc for loc in users if loc.get("preferred") is True), (users or good)[0])
    path = chosen["path"]
    try:
        if len(path) > 1024 or wire.CONTROL.search(path):
            raise ValueError("control characters or too long")
        return MOUNTERS[fs_type]().check_export(path)
    except Exception as e:  # the mounter's InvalidEntry, which the API does not import (import-linter)
        raise DriverError(f"Manila's export location {clean(path)!r} is not a {fs_type} export: {clean(e)}") from None


def mount_options_of(metadata: Any, fs_type: str) -> Tuple[str, ...]:
    """The share's `__mount_options` (comma separated, Manila's CephFS driver sets `fs=<name>`), each
    checked as the agent's mounter for fs_type checks an option; any other type gets none (the CephFS
    NFS helper sets the same key, which means nothing to an NFS client)."""
    value = metadata.get("__mount_options") if isinstance(metadata, dict) else None
    if fs_type != "cephfs" or not value:
        return ()
    if not isinstance(value, str):
        raise DriverError("Manila's __mount_options is not a string")
    options = tuple(o.strip() for o in value.split(",") if o.strip())
    mounter = MOUNTERS[fs_type]()
    for option in options:
        try:
            wire.check_pattern("mount option", option, wire.OPTION)
            mounter.check_option(option)
        except Exception as e:  # InvalidEntry or ValueError
            raise DriverError(f"Manila's __mount_options {clean(value)!r}: {clean(e)}") from None
    return options


class Http:
    """Manila's API below the project URL: request() -> (status, JSON body or {}). Tests record a fake."""

    def __init__(self, session: Any, base: str, token: Optional[str] = None, timeout: float = 60) -> None:
        self.session = session  # a keystoneauth1 Session (token and catalog) or a requests.Session (noauth)
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Optional[dict] = None,
                params: Optional[dict] = None) -> Tuple[int, Dict[str, Any]]:  # fmt: skip
        headers = {"X-OpenStack-Manila-API-Version": MICROVERSION, "Accept": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        kw: Dict[str, Any] = {"headers": headers, "json": body, "params": params, "timeout": self.timeout}
        try:
            if isinstance(self.session, requests.Session):
                response = self.session.request(method, self.base + path, **kw)
            else:
                response = self.session.request(self.base + path, method, raise_exc=False, **kw)
        except Exception as e:  # requests' or keystoneauth's connection and auth failures
            raise DriverError(f"Manila {method} {path}: {clean(e)}") from None
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        return response.status_code, data if isinstance(data, dict) else {}


def _fault(status: int, body: Dict[str, Any]) -> str:
    """Manila's error body is {"badRequest": {"message": ..., "code": 400}}: its message."""
    for value in body.values():
        if isinstance(value, dict) and "message" in value:
            return clean(value["message"])
    return f"HTTP {status}"


class ManilaDriver(Driver):
    """Options: share_proto (NFS, CEPHFS or GLUSTERFS; default NFS), share_type (default: Manila's
    default type), availability_zone, timeout (seconds per wait, 300); auth = keystone (default:
    auth_url, username, password, project_name, user_domain_name, project_domain_name, or their
    _id forms, region_name, interface (public), cafile, and endpoint to skip the catalog) or
    noauth (endpoint = Manila's /v2 URL, project = the project id it puts in the URL; for tests)."""

    name = "manila"

    def __init__(self, options: Mapping[str, str]) -> None:
        super().__init__(options)
        self.share_proto = self.options.get("share_proto", "NFS").upper()
        self.fs_type = PROTOCOLS.get(self.share_proto, "")
        self.http: Optional[Http] = None

    # -- setup --------------------------------------------------------------------------------

    def do_setup(self, context: Mapping[str, str]) -> None:
        if not self.fs_type:
            raise DriverError(f"manila driver: share_proto {self.options.get('share_proto')!r}: sharedfs mounts "
                              f"{', '.join(PROTOCOLS)} shares")  # fmt: skip
        try:
            self.timeout = float(self.options.get("timeout", "300"))
        except ValueError:
            raise DriverError(f"manila driver: timeout {self.options['timeout']!r} is not a number") from None
        self.share_type = self.options.get("share_type") or None
        self.zone = self.options.get("availability_zone") or None
        if self.http is None:
            self.http = self._connect()
        status, body = self.http.request("GET", "/shares", params={"limit": 1})
        if status != 200:  # reachable and authorised now, or the server does not start
            raise DriverError(f"manila driver: listing shares: {_fault(status, body)}")

    def _connect(self) -> Http:
        auth = self.options.get("auth", "keystone")
        if auth == "noauth":
            endpoint, project = self.options.get("endpoint"), self.options.get("project", "")
            # Manila routes only project ids of hex digits and dashes (its project_id_regex), as Keystone's are.
            if not endpoint or not PROJECT_ID.fullmatch(project):
                raise DriverError("manila driver: auth=noauth needs endpoint=http://HOST:8786/v2 and project=ID "
                                  "(hex digits and dashes)")  # fmt: skip
            # Manila's noauth takes a token "user:project" and makes its bearer an admin of that project.
            return Http(requests.Session(), f"{endpoint.rstrip('/')}/{project}", token=f"sharedfs:{project}")
        if auth != "keystone":
            raise DriverError(f"manila driver: auth {auth!r} is not keystone or noauth")
        try:
            from keystoneauth1 import exceptions, session
            from keystoneauth1.identity import v3
        except ImportError:
            raise DriverError("manila driver: auth=keystone needs keystoneauth1 (pip install 'sharedfs[openstack]')")
        given = {key: self.options[key] for key in KEYSTONE_OPTIONS if self.options.get(key)}
        if "auth_url" not in given or "password" not in given:
            raise DriverError("manila driver: auth=keystone needs auth_url, username, password, project_name "
                              "and the domains (see docs/operations.md)")  # fmt: skip
        sess = session.Session(auth=v3.Password(**given), verify=self.options.get("cafile") or True)
        try:
            endpoint = self.options.get("endpoint") or sess.get_endpoint(
                service_type="sharev2", interface=self.options.get("interface", "public"),
                region_name=self.options.get("region_name") or None)  # fmt: skip
            project_id = sess.get_project_id()
        except exceptions.ClientException as e:
            raise DriverError(f"manila driver: Keystone: {clean(e)}") from None
        if not endpoint:
            raise DriverError("manila driver: Keystone's catalog has no sharev2 endpoint")
        base = endpoint.rstrip("/")
        # Catalogs list Manila as …/v2 or as …/v2/<project id> (the older %(tenant_id)s form).
        if not base.endswith("/" + project_id):
            base += "/" + project_id
        return Http(sess, base)

    # -- helpers ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Optional[dict] = None, params: Optional[dict] = None,
              ok: Tuple[int, ...] = (200, 202)) -> Dict[str, Any]:  # fmt: skip
        assert self.http is not None, "do_setup() first"
        status, data = self.http.request(method, path, body, params)
        if status not in ok:
            raise DriverError(f"Manila {method} {path.split('?')[0]}: {_fault(status, data)}")
        return data

    def _wait(self, what: str, check) -> Any:
        """check() until it returns something; DriverError after timeout seconds."""
        deadline, pause = time.monotonic() + self.timeout, 0.05
        while True:
            result = check()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise DriverError(f"Manila: {what} after {self.timeout:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _shares(self) -> List[Dict[str, Any]]:
        """The project's shares that carry our tag, each checked: an id, a tag `project/name`."""
        found, offset = [], 0
        while True:
            page = self._call("GET", "/shares/detail", params={"limit": 500, "offset": offset}).get("shares")
            if not isinstance(page, list):
                raise DriverError("Manila's share list is not a list")
            for share in page:
                metadata = share.get("metadata") if isinstance(share, dict) else None
                tag = metadata.get(TAG) if isinstance(metadata, dict) else None
                if isinstance(tag, str) and isinstance(share.get("id"), str) and SHARE_ID.fullmatch(share["id"]):
                    found.append(share)
            if len(page) < 500:
                return found
            offset += len(page)

    @staticmethod
    def _tag(fs: FsSpec) -> str:
        return f"{fs.project}/{fs.name}"

    def _find(self, fs: FsSpec) -> List[Dict[str, Any]]:
        """Our shares for fs; with no project (the reconcile's orphans), every project's of that name."""
        if fs.project:
            return [s for s in self._shares() if s["metadata"][TAG] == self._tag(fs)]
        return [s for s in self._shares() if s["metadata"][TAG].partition("/")[2] == fs.name]

    def _one(self, fs: FsSpec) -> Dict[str, Any]:
        shares = self._find(fs)
        if len(shares) != 1:
            raise DriverError(f"Manila holds {len(shares)} shares tagged {TAG}={self._tag(fs)}, not one")
        return shares[0]

    def _message(self, share_id: str) -> str:
        """Manila's newest user message about the share (why it failed), or ""."""
        status, data = self.http.request("GET", "/messages", params={"resource_id": share_id, "sort_key": "created_at",
                                                                      "sort_dir": "desc", "limit": 1})  # fmt: skip
        messages = data.get("messages") if status == 200 else None
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return clean(messages[0].get("user_message", ""))
        return ""

    # -- the contract -------------------------------------------------------------------------

    def create(self, fs: FsSpec) -> str:
        if self._find(fs):
            raise DriverError(f"a Manila share tagged {TAG}={self._tag(fs)} already exists; not reusing another's data")
        share = {"share_proto": self.share_proto, "size": size_gib(fs.size_bytes), "name": f"sharedfs-{fs.project}-{fs.name}",
                 "description": f"sharedfs filesystem {self._tag(fs)}", "metadata": {TAG: self._tag(fs)}}  # fmt: skip
        if self.share_type:
            share["share_type"] = self.share_type
        if self.zone:
            share["availability_zone"] = self.zone
        made = self._call("POST", "/shares", {"share": share}).get("share")
        share_id = made.get("id") if isinstance(made, dict) else None
        if not isinstance(share_id, str) or not SHARE_ID.fullmatch(share_id):
            raise DriverError(f"Manila answered a share create without a share id: {clean(made)}")
        try:
            self._wait_available(share_id)
            return self.export_of(share_id)
        except DriverError:
            self._destroy(share_id)  # no row says it is there: leave nothing behind
            raise

    def _wait_available(self, share_id: str) -> None:
        def check() -> Optional[bool]:
            status = self._call("GET", f"/shares/{share_id}").get("share", {}).get("status")
            if status == "available":
                return True
            if isinstance(status, str) and status.startswith("error"):
                why = self._message(share_id) or "no message from Manila"
                raise DriverError(f"Manila share {share_id} is in {clean(status)}: {why}")
            return None

        self._wait(f"share {share_id} not available", check)

    def export_of(self, share_id: str) -> str:
        locations = self._call("GET", f"/shares/{share_id}/export_locations").get("export_locations")
        return choose_export(locations, self.fs_type)

    def mount_options(self, fs: FsSpec) -> Tuple[str, ...]:
        return mount_options_of(self._one(fs).get("metadata"), self.fs_type)

    def delete(self, fs: FsSpec) -> None:
        for share in self._find(fs):
            self._set_rules(share["id"], set())  # access goes first, even if the share's delete is slow
            self._destroy(share["id"], strict=True)

    def _destroy(self, share_id: str, strict: bool = False) -> None:
        """DELETE and wait until Manila no longer lists it. Best effort unless strict."""
        try:
            self._call("DELETE", f"/shares/{share_id}", ok=(202, 404))

            def gone() -> Optional[bool]:
                status, data = self.http.request("GET", f"/shares/{share_id}")
                if status == 404:
                    return True
                state = data.get("share", {}).get("status", "")
                if state == "error_deleting":
                    raise DriverError(f"Manila could not delete share {share_id}: "
                                      f"{self._message(share_id) or 'error_deleting'}")  # fmt: skip
                return None

            self._wait(f"share {share_id} still there", gone)
        except DriverError as e:
            if strict:
                raise
            log.error("removing Manila share %s: %s", share_id, e)

    def set_access(self, fs: FsSpec, addresses: AbstractSet[str]) -> None:
        for address in addresses:
            try:
                if wire.check_address(address) != address:
                    raise ValueError(f"address {address!r} is not in canonical form")
            except ValueError as e:
                raise DriverError(f"access list refused: {e}") from None
        self._set_rules(self._one(fs)["id"], set(addresses))

    def _rules(self, share_id: str) -> List[Dict[str, Any]]:
        rules = self._call("GET", "/share-access-rules", params={"share_id": share_id}).get("access_list")
        if not isinstance(rules, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in rules):
            raise DriverError("Manila's access rule list is malformed")
        return rules

    @staticmethod
    def _address(rule: Dict[str, Any]) -> Optional[str]:
        """The address of an `ip` rule, canonical; None for other rule types."""
        if rule.get("access_type") != "ip":
            return None
        try:
            network = ipaddress.ip_network(str(rule.get("access_to")), strict=False)
        except ValueError:
            return str(rule.get("access_to"))
        # A single address (a /32 or /128) is the address; a block stays a block (and is not wanted).
        return str(network.network_address) if network.num_addresses == 1 else str(network)

    def _set_rules(self, share_id: str, wanted: Set[str]) -> None:
        """Make the share's `ip` rules exactly `wanted`, rw: deny the others (and any in error, to try
        them again), allow the missing, wait until none is moving, report any wanted one in error.
        Rules of other types (cephx, user, cert) are an admin's and left alone."""
        keep: Set[str] = set()
        for rule in self._rules(share_id):
            address = self._address(rule)
            if address is None or rule.get("state") in ("queued_to_deny", "denying"):
                continue
            if address in wanted and address not in keep and rule.get("access_level") == "rw" \
                    and rule.get("state") != "error":  # fmt: skip
                keep.add(address)
                continue
            self._call("POST", f"/shares/{share_id}/action", {"deny_access": {"access_id": rule["id"]}}, ok=(202, 404))
        for address in sorted(wanted - keep):
            body = {"allow_access": {"access_type": "ip", "access_to": address, "access_level": "rw"}}
            self._call("POST", f"/shares/{share_id}/action", body)

        def settled() -> Optional[List[Dict[str, Any]]]:
            rules = [r for r in self._rules(share_id) if self._address(r) is not None]
            if any(r.get("state") in MOVING for r in rules):
                return None
            if {self._address(r) for r in rules} - wanted:  # a denied rule Manila still lists
                return None
            return rules

        rules = self._wait(f"access rules of share {share_id} not applied", settled)
        failed = sorted(str(self._address(r)) for r in rules if r.get("state") == "error")
        if failed:
            why = self._message(share_id) or "no message from Manila"
            raise DriverError(f"Manila put the access rule for {', '.join(failed)} in error: {why}")
        missing = wanted - {self._address(r) for r in rules if r.get("state") == "active"}
        if missing:
            raise DriverError(f"Manila lists no active rule for {', '.join(sorted(missing))}")

    def inventory(self) -> Optional[Set[str]]:
        """The names in our tags: this driver's Manila project is this backend's alone (docs/api.md)."""
        return {s["metadata"][TAG].partition("/")[2] for s in self._shares()}
