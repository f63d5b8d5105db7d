"""httpclient: one HTTP/1.1 exchange on a socket, against canned answers byte for byte."""

from __future__ import annotations

import socket
import threading

import pytest

from sharedfs_agent import httpclient


def canned(answer: bytes):
    """A one-shot server on loopback: returns (url, the request it received, as a list to fill)."""
    server = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        with server:
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                received.append(data)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", received


def test_content_length_headers_any_case_and_the_request_line():
    url, received = canned(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nETag: "7"\r\nContent-Length: 2\r\n\r\n{}')
    status, headers, body = httpclient.exchange(url + "/v1/x?wait=60", headers={"X-Auth-Token": "t"})
    assert (status, body) == (200, b"{}")
    assert headers.get("Content-Type") == "application/json" and headers.get("etag") == '"7"'
    request = received[0].decode()
    assert request.startswith("GET /v1/x?wait=60 HTTP/1.1\r\n") and "X-Auth-Token: t\r\n" in request
    assert "Connection: close" in request and f"Host: {url[7:]}" in request


def test_chunked_and_read_to_close():
    url, _ = canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    assert httpclient.exchange(url)[2] == b"abcde"
    url, _ = canned(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    assert httpclient.exchange(url)[2] == b"until the end"


def test_a_short_body_is_truncated_and_a_long_one_cut_at_max_plus_one():
    url, _ = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(httpclient.Truncated):
        httpclient.exchange(url)
    url, _ = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
    assert httpclient.exchange(url, max_bytes=4)[2] == b"01234"  # one more than accepted: "too long"


def test_not_http_and_no_body_on_304():
    url, _ = canned(b"<html>hello</html>\r\n\r\n")
    with pytest.raises(httpclient.BadAnswer):
        httpclient.exchange(url)
    url, _ = canned(b"HTTP/1.1 304 Not Modified\r\nETag: \"7\"\r\n\r\n")
    assert httpclient.exchange(url)[::2] == (304, b"")


def test_a_plain_http_proxy_gets_the_absolute_url(monkeypatch):
    proxy, received = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert httpclient.exchange("http://api.example:8776/v1/x")[0] == 200
    assert received[0].startswith(b"GET http://api.example:8776/v1/x HTTP/1.1\r\nHost: api.example:8776\r\n")
