"""The `api` source: this instance's effective set from sharedfs-api by long-poll with ETags, and states sent back."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .. import atomicfile, httpclient, identity, wire
from ..errors import ConfigError, SourceUnavailable
from ..model import Verdict
from ..records import dataclass
from .base import MAX_DOCUMENT_BYTES, Key, Reporter, Source, SourcePlugin

__all__ = ["ApiSource", "ApiClient", "ApiReporter", "ApiPlugin", "Response", "read_token", "Enrolled", "enrolled"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Enrolled:
    """Where the API is, the token, the CA bundle and who we are, once config and vendordata are combined."""

    url: str
    token: str
    ca_bundle: Optional[str]
    identity: Optional[identity.Identity]  # (instance_id, project) from vendordata; None: discover


def _saved_paths(token_file: str) -> Tuple[str, str]:
    """Next to the token: the last enrollment (no secret in it) and the CA it handed over."""
    directory = os.path.dirname(token_file)
    return os.path.join(directory, "vendordata.json"), os.path.join(directory, "vendordata-ca.pem")


def _save(settings: Mapping[str, Any], enrollment: identity.Enrollment) -> None:
    """The token (0600) where [api] token_file says, the CA and the rest beside it: a restart
    without the metadata service still finds the API, with the same checks as a fresh answer."""
    saved, ca_path = _saved_paths(settings["token_file"])
    try:
        atomicfile.replace_if_changed(settings["token_file"], enrollment.token.encode() + b"\n", mode=0o600)
        if enrollment.ca:
            atomicfile.replace_if_changed(ca_path, enrollment.ca.encode(), mode=0o644)
        record = {key: getattr(enrollment, key) for key in wire.VENDORDATA_KEYS if key != "token"}
        atomicfile.write_json(saved, record, mode=0o644)
    except OSError as e:
        raise ConfigError(f"[api] token_file {settings['token_file']}: cannot keep the vendordata enrollment: "
                          f"{e.strerror}") from None  # fmt: skip


def _saved(settings: Mapping[str, Any]) -> Optional[identity.Enrollment]:
    """The enrollment kept by _save, checked again (the token comes from token_file, as always)."""
    saved, _ = _saved_paths(settings["token_file"])
    try:
        record = atomicfile.read_json(saved)
    except (OSError, ValueError) as e:
        log.warning("%s: %s; ignored", saved, e)
        return None
    if record is None:
        return None
    try:
        return identity.check_enrollment(record, with_token=False)  # the token file is checked when read
    except ValueError as e:
        log.warning("%s refused: %s", saved, e)
        return None


def enrolled(settings: Mapping[str, Any]) -> Enrolled:
    """Config keys win; what they leave empty comes from vendordata (vendor_data2.json now, or as
    kept from an earlier boot). A fresh vendordata token replaces the token file's. The metadata
    service is not asked when the config names the API, the instance and its project and the
    token file exists: vendordata could add nothing but a token nobody asked for."""
    configured = all(settings[key] for key in ("url", "instance_id", "project"))
    fresh = None if configured and os.path.exists(settings["token_file"]) else identity.vendordata(settings)
    if fresh is not None:
        _save(settings, fresh)
    known = fresh or _saved(settings)
    url = settings["url"] or (known.api_url if known else "")
    if not url:
        raise ConfigError("[agent] source = api needs [api] url (or Nova's vendordata under "
                          f"{settings['vendordata_provider'] or 'a provider'!r} in vendor_data2.json)")  # fmt: skip
    token = fresh.token if fresh else read_token(settings["token_file"])
    ca_bundle = settings["ca_bundle"] or None
    if ca_bundle is None and known is not None and known.ca:
        ca_bundle = _saved_paths(settings["token_file"])[1]
    return Enrolled(url, token, ca_bundle, (known.instance_id, known.project) if known else None)


def _retry_after(headers) -> Optional[float]:
    value = headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    import email.utils  # only for the rare date form

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

    The agent's own httpclient rather than requests: the agent lives in every guest, and requests
    with urllib3 adds some 15 MB of resident memory for what httpclient does here too — verified
    TLS, proxies from the environment, timeouts, a kept connection for the long-poll. TLS (ssl) is
    loaded only for https.
    """

    def __init__(self, url: str, token: str, ca_bundle: Optional[str] = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        try:  # ssl.SSLError is an OSError: a bundle that is missing or not PEM is a person's to fix
            self.context = httpclient.tls_context(ca_bundle) if self.url.startswith("https:") else None
        except OSError as e:
            raise ConfigError(f"[api] ca_bundle {ca_bundle}: {getattr(e, 'reason', None) or e}") from None

    def request(self, method: str, path: str, read_timeout: float = 15.0, json_body=None, headers: Optional[dict] = None,
                max_bytes: int = MAX_DOCUMENT_BYTES, kept: Optional[httpclient.Kept] = None) -> Response:  # fmt: skip
        """One exchange (on `kept`'s connection when given); any HTTP status is a Response, only a
        failed exchange raises."""
        data = None if json_body is None else json.dumps(json_body).encode()
        sent = {"X-Auth-Token": self.token, "Accept": "application/json", "User-Agent": "sharedfs-agent",
                **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}  # fmt: skip
        try:
            status, answer_headers, body = httpclient.exchange(self.url + path, method, data, sent, read_timeout,
                                                               max_bytes, self.context, kept=kept)  # fmt: skip
        except httpclient.Truncated as e:
            raise SourceUnavailable(f"{method} {self.url}{path}: truncated answer ({e.received} bytes)") from None
        except (httpclient.BadAnswer, OSError, ValueError) as e:
            raise SourceUnavailable(f"{method} {self.url}{path}: {type(e).__name__}: {e}") from None
        return Response(status, answer_headers, body)


class ApiSource(Source):
    """GET /v1.1/{project}/os-instances/{id}/filesystems; fetch(wait) long-polls up to `wait` s.

    Anything but a 200 with a JSON document, or a 304 for the document we hold, is
    SourceUnavailable: a proxy's HTML error page or a 403 is never read as "nothing attached".
    """

    def __init__(self, client: ApiClient, project: str, instance_id: str, long_poll: float = 60.0) -> None:
        self.client, self.project, self.instance_id = client, project, instance_id
        self.long_poll = long_poll  # [api] wait
        self.path = f"/v1.1/{project}/os-instances/{instance_id}/filesystems"
        self.etag: Optional[str] = None
        self.document: Optional[bytes] = None
        # The long-poll's connection, kept from one answer to the next request (httpclient.Kept).
        self.kept = httpclient.Kept()

    def describe(self) -> str:
        return f"api {self.client.url}{self.path}"

    def fetch(self, wait: float = 0) -> bytes:
        headers = {"If-None-Match": self.etag} if self.etag and self.document is not None else {}
        path = self.path + (f"?wait={int(wait)}" if wait > 0 else "")
        # The client waits longer than the server holds, so a held request is never cut short.
        response = self.client.request("GET", path, read_timeout=wait + 15.0, headers=headers, kept=self.kept)
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


class ApiReporter(Reporter):
    """Sends each filesystem's state to the API when it changed, not on every pass; registers
    this instance's addresses when they change. A failed send is retried on the next pass."""

    def __init__(self, client: ApiClient, project: str, instance_id: str) -> None:
        self.client = client
        self.base = f"/v1.1/{project}/os-instances/{instance_id}"
        self.sent: Dict[str, Tuple[str, str]] = {}
        self.registered: Optional[Sequence[str]] = None

    def announce(self) -> None:
        self.register(identity.addresses())

    def register(self, addresses: Sequence[str]) -> None:
        if self.registered == list(addresses):
            return
        try:
            response = self.client.request("PUT", self.base, json_body={"instance": {"addresses": list(addresses)}})
        except SourceUnavailable as e:
            log.warning("could not register addresses %s: %s", ", ".join(addresses) or "(none)", e)
            return
        if response.status_code in (200, 201):
            log.info("registered addresses %s", ", ".join(addresses) or "(none)")
            self.registered = list(addresses)
        else:
            log.warning("registering addresses: HTTP %s", response.status_code)

    def report(self, verdicts: Sequence[Verdict]) -> int:
        """Returns how many states were sent."""
        sent = 0
        for verdict in verdicts:
            if verdict.name.startswith("#") or verdict.name == "-":
                continue  # refused entries without a usable name cannot be addressed
            state = (verdict.state.value, verdict.detail[:1000])
            if self.sent.get(verdict.name) == state:
                continue
            try:
                response = self.client.request("PUT", f"{self.base}/filesystems/{verdict.name}/state",
                                               json_body={"state": state[0], "detail": state[1]})  # fmt: skip
            except SourceUnavailable as e:
                log.warning("could not report %s %s: %s", verdict.name, state[0], e)
                return sent
            if response.status_code == 200:
                self.sent[verdict.name] = state
                sent += 1
            elif response.status_code == 404:
                self.sent[verdict.name] = state  # deleted meanwhile: nobody to tell
            else:
                log.warning("reporting %s %s: HTTP %s", verdict.name, state[0], response.status_code)
        return sent


class ApiPlugin(SourcePlugin):
    name = "api"
    keys = {
        "url": Key("", "url"),  # e.g. https://sharedfs.example:8776; empty: from vendordata
        "token_file": Key("/etc/sharedfs-agent/token", "path"),  # mode 0600; vendordata's token is written here
        "ca_bundle": Key(""),  # CA bundle for the API's TLS certificate; empty: the system's
        "wait": Key(60.0, "seconds"),  # long-poll hold asked of the server
        "instance_id": Key(""),  # empty: discovered (cloud-init, metadata service, config drive)
        "project": Key(""),
        "metadata_url": Key("http://169.254.169.254", "url"),
        "instance_data": Key("/run/cloud-init/instance-data.json", "path"),
        "config_drive_dir": Key(""),  # a mounted config drive; empty: look for the label config-2
        # Our entry in vendor_data2.json: the NAME of nova.conf's vendordata_dynamic_targets =
        # NAME@URL; empty turns enrollment by vendordata off.
        "vendordata_provider": Key(wire.VENDORDATA_PROVIDER),
    }

    def build(self, settings: Mapping[str, Any]) -> ApiSource:
        found = enrolled(settings)
        client = ApiClient(found.url, found.token, found.ca_bundle)
        instance_id, project = identity.discover(settings, found.identity)
        return ApiSource(client, project, instance_id, long_poll=settings["wait"])

    def reporter(self, source: Source) -> ApiReporter:
        assert isinstance(source, ApiSource)
        return ApiReporter(source.client, source.project, source.instance_id)
