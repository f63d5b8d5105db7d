"""One HTTP exchange with http.client, TLS (ssl) imported only for an https URL, proxies from the environment."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import urlsplit


class BadAnswer(Exception):
    """The server's answer is not HTTP (a bad status line, a closed connection, …)."""


class Truncated(BadAnswer):
    """The body is shorter than its Content-Length."""

    def __init__(self, received: int, expected: int) -> None:
        super().__init__(f"truncated answer ({received} of {expected} bytes)")
        self.received, self.expected = received, expected


_importing = threading.Lock()  # the ssl mask below must not meet another thread's `import ssl`


def _http_client():
    """http.client, imported (on the first exchange) while `import ssl` fails, unless something
    imported ssl already. http.client (and urllib.request) import ssl at module level, and with
    it OpenSSL's libraries: some 5 MB resident in a daemon that may never speak TLS (an http://
    API on a private network). TLS is done by _tls_connection() with ssl imported when a URL asks."""
    with _importing:
        if "http.client" not in sys.modules and "ssl" not in sys.modules:
            sys.modules["ssl"] = None  # type: ignore[assignment]  # "import ssl" raises ImportError
            try:
                import http.client
            finally:
                del sys.modules["ssl"]
    import http.client

    return http.client


def _tls_connection(host: str, port: Optional[int], timeout: float, context: Any):
    """What http.client's HTTPSConnection does (absent when http.client came without ssl)."""

    class TlsConnection(_http_client().HTTPConnection):
        default_port = 443

        def connect(self) -> None:
            super().connect()  # through the proxy's CONNECT tunnel when one is set
            self.sock = context.wrap_socket(self.sock, server_hostname=self._tunnel_host or self.host)

    return TlsConnection(host, port, timeout=timeout)


def tls_context(ca_bundle: Optional[str] = None):
    """A verifying TLS context (hostname and chain), with this CA bundle or the system's."""
    with _importing:
        import ssl

    return ssl.create_default_context(cafile=ca_bundle or None)


def proxy_for(scheme: str, host: str) -> Optional[Tuple[str, int]]:
    """(host, port) of the proxy the environment names for this scheme and host, or None
    (no proxy, or the host is in no_proxy: a name, a .domain suffix, or *)."""
    proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    for entry in (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host.lower() == entry or host.lower().endswith("." + entry))):
            return None
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return (parts.hostname or "", parts.port or 80) if parts.hostname else None


def exchange(url: str, method: str = "GET", body: Optional[bytes] = None, headers: Optional[Mapping[str, str]] = None,
             timeout: float = 15.0, max_bytes: int = 1 << 20, context: Any = None,
             use_proxy: bool = True) -> Tuple[int, Any, bytes]:  # fmt: skip
    """(status, headers, body read up to max_bytes + 1) of one request; any status is an answer.
    Raises OSError (refused, timed out, TLS), BadAnswer (Truncated: a body shorter than its
    Content-Length) or ValueError (a bad URL)."""
    http = _http_client()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url}")
    host, port = parts.hostname, parts.port
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = proxy_for(parts.scheme, host) if use_proxy else None
    if parts.scheme == "https":
        connection = _tls_connection(*(proxy or (host, port)), timeout=timeout, context=context or tls_context())
        if proxy:
            connection.set_tunnel(host, port)
    else:
        connection = http.HTTPConnection(*(proxy or (host, port)), timeout=timeout)
        if proxy:
            target = url  # a plain-HTTP proxy takes the absolute URL
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        answer = connection.getresponse()
        data = answer.read(max_bytes + 1)
        expected = answer.headers.get("Content-Length", "")
        if expected.isdigit() and int(expected) != len(data) and len(data) <= max_bytes:
            raise Truncated(len(data), int(expected))
        return answer.status, answer.headers, data
    except http.IncompleteRead as e:
        raise Truncated(len(e.partial), len(e.partial) + (e.expected or 0)) from None
    except http.HTTPException as e:
        raise BadAnswer(f"{type(e).__name__}: {e}") from None
    finally:
        connection.close()
