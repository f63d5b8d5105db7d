"""The `api` source: this instance's effective set from sharedfs-api, by long-poll with ETags."""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import ssl
import stat
import time
import urllib.error
import urllib.request
from typing import Optional

from ..errors import ConfigError, SourceUnavailable
from .base import MAX_DOCUMENT_BYTES, Source

__all__ = ["ApiSource", "ApiClient", "Response", "read_token"]


def read_token(path: str) -> str:
    """The instance token; the file must be readable by its owner only (it is a credential)."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ConfigError(f"[api] token_file {path}: {e.strerror}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"[api] token_file {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"chmod 600 {path}"
        )
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"[api] token_file {path} does not hold one token")
    return token


def _retry_after(headers) -> Optional[float]:
    value = headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Response:
    """What one HTTP exchange gave: status, headers (case-insensitive get), body."""

    def __init__(self, status_code: int, headers, body: bytes) -> None:
        self.status_code, self.headers, self.body = status_code, headers, body

    def json(self):
        return json.loads(self.body)


class ApiClient:
    """HTTP to sharedfs-api with the instance token; TLS verified (with a CA bundle if given).

    The standard library's urllib rather than requests: the agent lives in every guest, and
    requests with urllib3 adds some 15 MB of resident memory for what urllib does here too —
    verified TLS, proxies from the environment, timeouts.
    """

    def __init__(self, url: str, token: str, ca_bundle: Optional[str] = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        context = ssl.create_default_context(cafile=ca_bundle or None)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def request(self, method: str, path: str, read_timeout: float = 15.0, json_body=None,
                headers: Optional[dict] = None, max_bytes: int = MAX_DOCUMENT_BYTES) -> Response:  # fmt: skip
        """One exchange; any HTTP status is a Response, only a failed exchange raises."""
        data = None if json_body is None else json.dumps(json_body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "X-Auth-Token": self.token, "Accept": "application/json", "User-Agent": "sharedfs-agent",
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})  # fmt: skip
        try:
            try:
                answer = self.opener.open(request, timeout=read_timeout)
            except urllib.error.HTTPError as e:
                answer = e  # a 4xx/5xx (and 304) is an answer, with headers and a body
            with answer:
                body = answer.read(max_bytes + 1)
                expected = answer.headers.get("Content-Length", "")
                if expected.isdigit() and int(expected) != len(body) and len(body) <= max_bytes:
                    raise http.client.IncompleteRead(body, int(expected) - len(body))
                return Response(answer.status if hasattr(answer, "status") else answer.code, answer.headers, body)
        except http.client.IncompleteRead as e:
            raise SourceUnavailable(f"{method} {self.url}{path}: truncated answer ({len(e.partial)} bytes)") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SourceUnavailable(f"{method} {self.url}{path}: {type(e).__name__}: {reason}") from None


class ApiSource(Source):
    """GET /v1.1/{project}/os-instances/{id}/filesystems; fetch(wait) long-polls up to `wait` s.

    Anything but a 200 with a JSON document, or a 304 for the document we hold, is
    SourceUnavailable: a proxy's HTML error page or a 403 is never read as "nothing attached".
    """

    def __init__(self, client: ApiClient, project: str, instance_id: str) -> None:
        self.client, self.project, self.instance_id = client, project, instance_id
        self.path = f"/v1.1/{project}/os-instances/{instance_id}/filesystems"
        self.etag: Optional[str] = None
        self.document: Optional[bytes] = None

    def describe(self) -> str:
        return f"api {self.client.url}{self.path}"

    def fetch(self, wait: float = 0) -> bytes:
        headers = {"If-None-Match": self.etag} if self.etag and self.document is not None else {}
        path = self.path + (f"?wait={int(wait)}" if wait > 0 else "")
        # The client waits longer than the server holds, so a held request is never cut short.
        response = self.client.request("GET", path, read_timeout=wait + 15.0, headers=headers)
        if response.status_code == 304 and self.document is not None:
            return self.document
        if response.status_code != 200:
            raise SourceUnavailable(f"{self.describe()}: HTTP {response.status_code} {_reason(response)}",
                                    retry_after=_retry_after(response.headers))  # fmt: skip
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("application/json"):
            raise SourceUnavailable(f"{self.describe()}: answer is {content_type or 'untyped'}, not JSON")
        body = response.body
        if len(body) > MAX_DOCUMENT_BYTES:
            raise SourceUnavailable(f"{self.describe()}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            parsed = json.loads(body)
        except ValueError as e:
            raise SourceUnavailable(f"{self.describe()}: answer is not valid JSON: {e}") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("filesystems"), list):
            raise SourceUnavailable(f'{self.describe()}: answer has no "filesystems" list')
        self.etag, self.document = response.headers.get("ETag"), body
        return body


def _reason(response: Response) -> str:
    """The server's error message when it sent one, else the start of the body."""
    try:
        return str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return response.body[:80].decode("utf-8", "replace").replace("\n", " ")
