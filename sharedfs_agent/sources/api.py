"""The `api` source: this instance's effective set from sharedfs-api, by long-poll with ETags."""

from __future__ import annotations

import email.utils
import json
import os
import stat
import time
from typing import Optional

import requests
from urllib3.exceptions import HTTPError

from ..errors import ConfigError, SourceUnavailable
from .base import MAX_DOCUMENT_BYTES, Source

__all__ = ["ApiSource", "ApiClient", "read_token"]


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


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ApiClient:
    """HTTP to sharedfs-api with the instance token; TLS verified (with a CA bundle if given)."""

    def __init__(self, url: str, token: str, ca_bundle: Optional[str] = None, connect_timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "Accept": "application/json",
                                     "User-Agent": "sharedfs-agent"})  # fmt: skip
        self.session.verify = ca_bundle or True
        self.connect_timeout = connect_timeout

    def request(self, method: str, path: str, read_timeout: float = 15.0, **kw) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=(self.connect_timeout, read_timeout), **kw)
        except requests.RequestException as e:
            raise SourceUnavailable(f"{method} {self.url}{path}: {type(e).__name__}: {e}") from None


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
        response = self.client.request("GET", path, read_timeout=wait + 15.0, headers=headers, stream=True)
        with response:
            if response.status_code == 304 and self.document is not None:
                return self.document
            if response.status_code != 200:
                raise SourceUnavailable(f"{self.describe()}: HTTP {response.status_code} {_reason(response)}",
                                        retry_after=_retry_after(response))  # fmt: skip
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("application/json"):
                raise SourceUnavailable(f"{self.describe()}: answer is {content_type or 'untyped'}, not JSON")
            try:
                body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
            except (HTTPError, OSError) as e:
                raise SourceUnavailable(f"{self.describe()}: truncated or broken answer: {e}") from None
        if len(body) > MAX_DOCUMENT_BYTES:
            raise SourceUnavailable(f"{self.describe()}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
        expected = response.headers.get("Content-Length")
        plain = not response.headers.get("Content-Encoding")
        if plain and expected is not None and expected.isdigit() and int(expected) != len(body):
            raise SourceUnavailable(f"{self.describe()}: truncated answer ({len(body)} of {expected} bytes)")
        try:
            parsed = json.loads(body)
        except ValueError as e:
            raise SourceUnavailable(f"{self.describe()}: answer is not valid JSON: {e}") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("filesystems"), list):
            raise SourceUnavailable(f'{self.describe()}: answer has no "filesystems" list')
        self.etag, self.document = response.headers.get("ETag"), body
        return body


def _reason(response: requests.Response) -> str:
    """The server's error message when it sent one, else the status text."""
    try:
        return str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return response.reason or ""
