"""The os-filesystem API over HTTP: one method per call, errors as ClientError, the transport replaceable.

The endpoint and the credentials come from outside: the `sharedfs` command passes a URL and a
token (UrllibTransport sends it as X-Auth-Token); an `openstack filesystem` plugin will pass the
endpoint it found in the Keystone catalog and a transport over its keystoneauth session, which
adds the token itself. Nothing here knows where either came from.

The standard library's urllib rather than requests, as the agent does (sharedfs_agent/sources/api.py):
the client installs with the agent's package and must stay light.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from .errors import ApiError, BadAnswer, Unreachable
from .output import sanitize

__all__ = ["Client", "Reply", "Transport", "UrllibTransport", "MAX_ANSWER_BYTES"]

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # far above any listing; a runaway answer is cut, not read into memory
MAX_RETRY_AFTER = 10.0  # a shed call is sent again after the server's Retry-After, at most this long


@dataclass(frozen=True)
class Reply:
    """One HTTP exchange: status, headers (case-insensitive get), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """How a request reaches the API; the authentication is the transport's business."""

    def send(self, method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float) -> Reply:
        """Any HTTP status is a Reply; only a failed exchange raises (Unreachable)."""


class UrllibTransport:
    """HTTP(S) with a static token in X-Auth-Token; TLS verified (with a CA bundle if given);
    proxies from the environment, as urllib does."""

    def __init__(self, token: Optional[str] = None, ca_bundle: Optional[str] = None) -> None:
        self.token = token
        context = ssl.create_default_context(cafile=ca_bundle or None)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def send(self, method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float) -> Reply:
        if self.token:
            headers = {**headers, "X-Auth-Token": self.token}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            try:
                answer = self.opener.open(request, timeout=timeout)
            except urllib.error.HTTPError as e:
                answer = e  # a 4xx/5xx is an answer, with headers and a body
            with answer:
                data = answer.read(MAX_ANSWER_BYTES + 1)
                expected = answer.headers.get("Content-Length", "")
                if expected.isdigit() and int(expected) != len(data) and len(data) <= MAX_ANSWER_BYTES:
                    raise http.client.IncompleteRead(data, int(expected) - len(data))
                return Reply(answer.status if hasattr(answer, "status") else answer.code, answer.headers, data)
        except http.client.IncompleteRead as e:
            raise BadAnswer(f"{method} {url}: truncated answer ({len(e.partial)} bytes)") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable(f"{method} {url}: {type(e).__name__}: {reason}") from None


def _segment(value: str) -> str:
    """A path segment; quoted whole so a name like '../x' can never leave its place in the URL."""
    return urllib.parse.quote(str(value), safe="")


class Client:
    """The os-filesystem calls of one project (tenant) at one endpoint (`https://host:8776`).

    Every method returns the API's own dicts (docs/api.md) and raises ApiError when the API
    refuses, Unreachable when it cannot be reached, BadAnswer when what answered is not the API.
    """

    def __init__(self, endpoint: str, project: str, transport: Transport, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project = project
        self.transport = transport
        self.timeout = timeout
        self.clock_offset = 0.0  # server clock minus ours, from the last answer's Date header

    # -- filesystems --------------------------------------------------------------------------

    def list_filesystems(self) -> List[dict]:
        return self._list(self._call("GET", "os-filesystem"), "fs_entries")

    def get_filesystem(self, name: str) -> dict:
        return self._object(self._call("GET", "os-filesystem", name), "fs_entry")

    def create_filesystem(self, name: str, size: str, scope: Optional[str] = None, mount_point: Optional[str] = None,
                          fs_type: Optional[str] = None, mount_options: Sequence[str] = (),
                          export: Optional[str] = None) -> Tuple[bool, dict]:  # fmt: skip
        """(True, entry) when created, (False, entry) when an identical one existed (the API's 200)."""
        entry: Dict[str, Any] = {"size": size}
        for key, value in (("scope", scope), ("mount_point", mount_point), ("fs_type", fs_type), ("export", export)):
            if value is not None:
                entry[key] = value
        if mount_options:
            entry["mount_options"] = list(mount_options)
        reply = self._call("PUT", "os-filesystem", name, body={"fs_entry": entry})
        return reply.status in (201, 202), self._object(reply, "fs_entry")  # 202: the server makes it now

    def delete_filesystem(self, name: str) -> None:
        self._call("DELETE", "os-filesystem", name)

    def filesystem_instances(self, name: str) -> List[dict]:
        """Each instance it belongs on (connected) or that still reports a state for it, with
        mount_state, detail and updated_at."""
        return self._list(self._call("GET", "os-filesystem", name, "instances"), "instances")

    def connect(self, name: str, instance_id: str) -> bool:
        """True when newly connected, False when it already was."""
        return self._call("PUT", "os-filesystem", name, "instances", instance_id).status == 201

    def disconnect(self, name: str, instance_id: str) -> None:
        self._call("DELETE", "os-filesystem", name, "instances", instance_id)

    # -- instances ----------------------------------------------------------------------------

    def list_instances(self) -> List[dict]:
        return self._list(self._call("GET", "os-instances"), "instances")

    # -- time ---------------------------------------------------------------------------------

    def server_now(self) -> float:
        """The server's clock now (epoch seconds), so ages of its timestamps ignore our clock's error."""
        return time.time() + self.clock_offset

    # -- the exchange -------------------------------------------------------------------------

    def url(self, *segments: str) -> str:
        return "/".join([self.endpoint, "v1.1", _segment(self.project), *(_segment(s) for s in segments)])

    def _call(self, method: str, *segments: str, body: Optional[dict] = None) -> Reply:
        url = self.url(*segments)
        headers = {"Accept": "application/json", "User-Agent": "sharedfs-client"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        reply = self.transport.send(method, url, headers, data, self.timeout)
        deadline = time.monotonic() + self.timeout
        while (wait := _shed_wait(reply)) is not None and time.monotonic() + wait < deadline:
            time.sleep(wait)  # the server shed the call before doing any of it: the same call again is safe
            reply = self.transport.send(method, url, headers, data, self.timeout)
        self._note_clock(reply)
        if 200 <= reply.status < 300:
            return reply
        raise _refusal(method, url, reply)

    def _note_clock(self, reply: Reply) -> None:
        try:
            when = email.utils.parsedate_to_datetime(reply.headers.get("Date") or "")
        except (TypeError, ValueError):
            return
        self.clock_offset = when.timestamp() - time.time()

    @staticmethod
    def _json(reply: Reply) -> Any:
        kind = reply.headers.get("Content-Type") or ""
        if not kind.startswith("application/json"):
            raise BadAnswer(f"answer is {sanitize(kind) or 'untyped'}, not JSON: is the URL the sharedfs API's?")
        try:
            return json.loads(reply.body)
        except ValueError as e:
            raise BadAnswer(f"answer is not valid JSON: {e}") from None

    def _object(self, reply: Reply, key: str) -> dict:
        value = self._json(reply)
        if not isinstance(value, dict) or not isinstance(value.get(key), dict):
            raise BadAnswer(f'answer has no "{key}" object')
        return value[key]

    def _list(self, reply: Reply, key: str) -> List[dict]:
        value = self._json(reply)
        if not isinstance(value, dict) or not isinstance(value.get(key), list):
            raise BadAnswer(f'answer has no "{key}" list')
        if not all(isinstance(item, dict) for item in value[key]):
            raise BadAnswer(f'answer\'s "{key}" holds something other than objects')
        return value[key]


def _shed_wait(reply: Reply) -> Optional[float]:
    """Seconds to wait before sending again, when the API shed the call (503 with Retry-After in
    seconds, answered before any work: see the API's --max-busy); None for any other answer."""
    after = (reply.headers.get("Retry-After") or "").strip()
    if reply.status != 503 or not after.isdigit():
        return None
    return min(float(after), MAX_RETRY_AFTER)


def _refusal(method: str, url: str, reply: Reply) -> Exception:
    """The API's own message when it sent one; otherwise say what answered instead (a proxy, a
    web server) without pouring its page into the terminal."""
    try:
        message = json.loads(reply.body)["error"]["message"]
        if isinstance(message, str):
            return ApiError(reply.status, message)
    except (ValueError, KeyError, TypeError):
        pass
    start = reply.body[:80].decode("utf-8", "replace").replace("\n", " ").strip()
    return BadAnswer(f"{method} {url}: HTTP {reply.status} that is not the API's error: {start!r}")
