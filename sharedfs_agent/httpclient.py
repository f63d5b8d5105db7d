"""One HTTP/1.1 exchange on a socket: TLS (ssl) loaded only for https, proxies from the environment.

Not http.client or urllib: they import ssl (OpenSSL's libraries) and the email package at
module level, some 5 MB resident in a daemon that sends one request a minute and may never
speak TLS. What the agent needs is small: a request on a new connection (`Connection: close`)
or on one it keeps (Kept: the long-poll), a status line, headers, a body by Content-Length,
chunked, or up to the close.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["exchange", "Kept", "tls_context", "proxy_for", "Headers", "BadAnswer", "Truncated"]

_MAX_LINE = 65536  # a status or header line longer than this is not an answer we want
_MAX_HEADERS = 200
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


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


def _head(reader) -> Tuple[int, Headers, bool]:
    """The status line's code, the headers, and whether the connection stays open after the answer
    (HTTP/1.1's default; HTTP/1.0's only with `Connection: keep-alive`; never with `close`)."""
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
            options = {o.strip() for o in headers.get("Connection", "").lower().split(",")}
            persistent = "keep-alive" in options if parts[0] == b"HTTP/1.0" else "close" not in options
            return int(parts[1]), headers, persistent
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise BadAnswer(f"not a header line: {line[:60]!r}")
        dict.__setitem__(headers, name.strip().lower(), value.strip())
    raise BadAnswer(f"more than {_MAX_HEADERS} headers")


def _body(reader, status: int, headers: Headers, method: str, limit: int) -> Tuple[bytes, bool]:
    """At most limit bytes of the body (one more than the caller accepts tells it "too long"),
    and whether it was read to its end with the connection still usable for another request."""
    if method == "HEAD" or status in (204, 304):  # (interim answers are skipped before: _ask)
        return b"", True
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks, size = [], 0
        while size < limit:
            line = _line(reader).split(b";")[0].strip()
            if not _CHUNK_SIZE.fullmatch(line):  # int(x, 16) would take "-1" (read to the end), "0x1", "1_0"
                raise BadAnswer(f"bad chunk size {line[:20]!r}")
            length = int(line, 16)
            if length == 0:
                for _ in range(_MAX_HEADERS):  # the trailer, up to its empty line
                    if _line(reader) in (b"\r\n", b"\n", b""):
                        return b"".join(chunks), True
                raise BadAnswer(f"more than {_MAX_HEADERS} trailer lines")
            want = min(length, limit - size)
            chunk = reader.read(want)
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want:
                raise Truncated(size, size + want - len(chunk))
            if want < length:
                break  # past the limit: the caller refuses the answer as too long
            if reader.read(2) != b"\r\n":
                raise BadAnswer("a chunk not followed by CRLF")
        return b"".join(chunks), False
    expected = headers.get("Content-Length", "")
    if expected.isdigit():
        body = reader.read(min(int(expected), limit))
        if len(body) < min(int(expected), limit):
            raise Truncated(len(body), int(expected))
        return body, int(expected) <= limit
    return reader.read(limit), False  # no length: the body ends where the server closes


class Kept:
    """A connection kept for one caller's next request: the watcher's long-poll, sent again the
    moment it is answered. A fleet woken by one change then costs the server no accept and no
    close per agent (bench/fanout.py). Only GET and HEAD use it: a kept connection the server
    closed meanwhile (its idle timeout, a restart) is found out before sending (_idle) or, in a
    race with the close, by sending on it, and then the request goes again on a new connection,
    which only an idempotent request may."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one request at a time on it; a second caller opens its own
        self.key: Optional[tuple] = None  # (scheme, host, port, proxy) it is connected for
        self.sock: Any = None
        self.reader: Any = None

    def close(self) -> None:
        sock, reader, self.sock, self.reader, self.key = self.sock, self.reader, None, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()


class _Stale(Exception):
    """A kept connection gave no answer at all: the server had closed it."""


def _idle(kept: Kept) -> bool:
    """Whether the kept connection is as its last answer left it: the server has sent nothing since
    (bytes after an answer are no answer to the next request) and has not closed it."""
    kept.sock.settimeout(0)
    try:
        if kept.reader.peek(1):  # bytes already read past the last answer
            return False
    except OSError:  # TLS with nothing decrypted: SSLWantReadError (plain sockets answer b"")
        pass
    return not select.select([kept.sock], [], [], 0)[0]  # readable: more bytes, or the server's close


def _ask(sock, reader, request: bytes, method: str, max_bytes: int, reused: bool) -> Tuple[int, Headers, bytes, bool]:
    """Sends the request and reads its answer: (status, headers, body, reusable). On a reused
    connection, _Stale when the server closed it before answering (EOF or a reset)."""
    try:
        sock.sendall(request)
        if reused and not reader.peek(1):  # b"": the end of the stream, not an answer
            raise _Stale()
    except ConnectionError as e:  # reset, broken pipe
        if reused:
            raise _Stale() from e
        raise
    status, answer_headers, persistent = _head(reader)
    while 100 <= status < 200:  # interim answers (100 Continue, 103 Early Hints) come before the real one
        if status == 101:
            raise BadAnswer("the server switched protocols")
        status, answer_headers, persistent = _head(reader)
    body, complete = _body(reader, status, answer_headers, method, max_bytes + 1)
    return status, answer_headers, body, persistent and complete


def exchange(url: str, method: str = "GET", body: Optional[bytes] = None, headers: Optional[Mapping[str, str]] = None,
             timeout: float = 15.0, max_bytes: int = 1 << 20, context: Any = None,
             use_proxy: bool = True, kept: Optional[Kept] = None) -> Tuple[int, Headers, bytes]:  # fmt: skip
    """(status, headers, body read up to max_bytes + 1) of one request; any status is an answer.
    kept: the connection to send a GET or HEAD on, and to keep open after it when the answer
    allows (HTTP/1.1, no `Connection: close`, the whole body read); without it, or for another
    method, a new connection closed after the answer. Raises OSError (refused, timed out, TLS),
    BadAnswer (Truncated: a body shorter than its Content-Length) or ValueError (a bad URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url}")
    host, tls = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = proxy_for(parts.scheme, host) if use_proxy else None
    authority = f"[{host}]" if ":" in host else host
    authority += "" if port == (443 if tls else 80) else f":{port}"
    if proxy and not tls:
        target = f"http://{authority}{target}"  # a plain-HTTP proxy takes the absolute URL
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}", "Accept-Encoding: identity",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]  # fmt: skip
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    keep = kept is not None and method in ("GET", "HEAD") and kept.lock.acquire(blocking=False)
    try:
        if not keep:
            lines.insert(2, "Connection: close")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        key = (parts.scheme, host, port, proxy)
        if keep and kept.sock is not None:
            if kept.key == key and _idle(kept):
                try:
                    kept.sock.settimeout(timeout)
                    status, answer_headers, answer, reusable = _ask(kept.sock, kept.reader, request, method,
                                                                    max_bytes, reused=True)  # fmt: skip
                    if not reusable:
                        kept.close()
                    return status, answer_headers, answer
                except _Stale:
                    pass  # closed by the server while unused: the same request goes on a new connection
            kept.close()
        sock = _open(proxy, host, port, authority, tls, timeout, context)
        reader = None
        try:
            reader = sock.makefile("rb")
            status, answer_headers, answer, reusable = _ask(sock, reader, request, method, max_bytes, reused=False)
            if keep and reusable:
                kept.key, kept.sock, kept.reader = key, sock, reader
                sock = reader = None  # the kept connection's now, not closed below
            return status, answer_headers, answer
        finally:
            if reader is not None:
                reader.close()
            if sock is not None:
                sock.close()
    except BaseException:
        if keep:
            kept.close()  # a kept connection left mid-answer is not usable again
        raise
    finally:
        if keep:
            kept.lock.release()


def _open(proxy: Optional[Tuple[str, int]], host: str, port: int, authority: str, tls: bool, timeout: float,
          context: Any) -> socket.socket:  # fmt: skip
    """A connection to the server (through the proxy; TLS end to end for https)."""
    sock = _connect(*(proxy or (host, port)), timeout)
    try:
        if proxy and tls:  # a tunnel through the proxy, then TLS end to end
            sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            with sock.makefile("rb") as reader:
                status, _, _ = _head(reader)
            if status != 200:
                raise OSError(f"proxy {proxy[0]}:{proxy[1]} refused the tunnel: HTTP {status}")
        if tls:
            sock = (context or tls_context()).wrap_socket(sock, server_hostname=host)
        return sock
    except BaseException:
        sock.close()
        raise
