"""One HTTP/1.1 exchange on a socket: TLS (ssl) loaded only for https, proxies from the environment.

Not http.client or urllib: they import ssl (OpenSSL's libraries) and the email package at
module level, some 5 MB resident in a daemon that sends one request a minute and may never
speak TLS. What the agent needs is small: one request per connection (`Connection: close`), a
status line, headers, a body by Content-Length, chunked, or up to the close.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["exchange", "tls_context", "proxy_for", "Headers", "BadAnswer", "Truncated"]

_MAX_LINE = 65536  # a status or header line longer than this is not an answer we want
_MAX_HEADERS = 200


class BadAnswer(Exception):
    """The server's answer is not HTTP (a bad status line, a header too long, a broken chunk, …)."""


class Truncated(BadAnswer):
    """The body ended before its Content-Length (or its last chunk)."""

    def __init__(self, received: int, expected: int) -> None:
        super().__init__(f"truncated answer ({received} of {expected} bytes)")
        self.received, self.expected = received, expected


class Headers(Dict[str, str]):
    """Response headers; get() ignores case. A repeated header keeps its last value."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


_importing_ssl = threading.Lock()


def tls_context(ca_bundle: Optional[str] = None):
    """A verifying TLS context (chain and hostname), with this CA bundle or the system's."""
    with _importing_ssl:
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
    return (parts.hostname, parts.port or 80) if parts.hostname else None


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    # The name as bytes: a str makes getaddrinfo load the idna codec (unicodedata, stringprep).
    return socket.create_connection((host.encode("idna") if not host.isascii() else host.encode(), port), timeout)


def _line(reader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise BadAnswer("a line of the answer is too long")
    return line


def _head(reader) -> Tuple[int, Headers]:
    """The status line and the headers."""
    status_line = _line(reader)
    if not status_line:
        raise BadAnswer("connection closed without an answer")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer(f"not an HTTP status line: {status_line[:60]!r}")
    headers = Headers()
    for _ in range(_MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            return int(parts[1]), headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise BadAnswer(f"not a header line: {line[:60]!r}")
        dict.__setitem__(headers, name.strip().lower(), value.strip())
    raise BadAnswer(f"more than {_MAX_HEADERS} headers")


def _body(reader, status: int, headers: Headers, method: str, limit: int) -> bytes:
    """At most limit bytes of the body (one more than the caller accepts tells it "too long")."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks, size = [], 0
        while size < limit:
            line = _line(reader).split(b";")[0].strip()
            try:
                length = int(line, 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size {line[:20]!r}") from None
            if length == 0:
                break
            want = min(length, limit - size)
            chunk = reader.read(want)
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want:
                raise Truncated(size, size + want - len(chunk))
            if want < length:
                break  # past the limit: the caller refuses the answer as too long
            reader.read(2)  # the CRLF after the chunk
        return b"".join(chunks)
    expected = headers.get("Content-Length", "")
    if expected.isdigit():
        body = reader.read(min(int(expected), limit))
        if len(body) < min(int(expected), limit):
            raise Truncated(len(body), int(expected))
        return body
    return reader.read(limit)  # no length: the body ends where the server closes


def exchange(url: str, method: str = "GET", body: Optional[bytes] = None, headers: Optional[Mapping[str, str]] = None,
             timeout: float = 15.0, max_bytes: int = 1 << 20, context: Any = None,
             use_proxy: bool = True) -> Tuple[int, Headers, bytes]:  # fmt: skip
    """(status, headers, body read up to max_bytes + 1) of one request; any status is an answer.
    Raises OSError (refused, timed out, TLS), BadAnswer (Truncated: a body shorter than its
    Content-Length) or ValueError (a bad URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url}")
    host, tls = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = proxy_for(parts.scheme, host) if use_proxy else None
    authority = f"[{host}]" if ":" in host else host
    authority += "" if port == (443 if tls else 80) else f":{port}"
    sock = _connect(*(proxy or (host, port)), timeout)
    try:
        if proxy and tls:  # a tunnel through the proxy, then TLS end to end
            sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            with sock.makefile("rb") as reader:
                status, _ = _head(reader)
            if status != 200:
                raise OSError(f"proxy {proxy[0]}:{proxy[1]} refused the tunnel: HTTP {status}")
        elif proxy:
            target = f"http://{authority}{target}"  # a plain-HTTP proxy takes the absolute URL
        if tls:
            sock = (context or tls_context()).wrap_socket(sock, server_hostname=host)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}", "Connection: close", "Accept-Encoding: identity"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        with sock.makefile("rb") as reader:
            status, answer_headers = _head(reader)
            while status == 100:  # "continue", before the real answer
                status, answer_headers = _head(reader)
            return status, answer_headers, _body(reader, status, answer_headers, method, max_bytes + 1)
    finally:
        sock.close()
