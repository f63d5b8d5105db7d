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


def serving(*connections: list):
    """A loopback server taking one connection per list (each served on its own thread), answering
    its requests with the list's answers in order, then closing it: returns (url, the requests
    received per connection, in the order the connections came)."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list = []

    def converse(conn, answers: list, requests: list) -> None:
        with conn:
            data = b""
            for answer in answers:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                request, _, data = data.partition(b"\r\n\r\n")
                requests.append(request.decode())
                conn.sendall(answer)

    def serve():
        with server:
            for answers in connections:
                conn, _ = server.accept()
                received.append([])
                threading.Thread(target=converse, args=(conn, answers, received[-1]), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", received


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def test_a_kept_connection_carries_the_next_get():
    url, received = serving([OK, OK, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", OK])
    kept = httpclient.Kept()
    assert [httpclient.exchange(url + f"/{i}", kept=kept)[2] for i in range(4)] == [b"{}", b"{}", b"ab", b"{}"]
    assert [r.split(" ")[1] for r in received[0]] == ["/0", "/1", "/2", "/3"]  # one connection for all four
    assert not any("Connection: close" in r for r in received[0])
    kept.close()


def test_a_connection_the_server_closed_meanwhile_is_replaced_once():
    url, received = serving([OK], [OK])  # the server closes the first connection after one answer
    kept = httpclient.Kept()
    assert httpclient.exchange(url + "/a", kept=kept)[0] == 200
    assert httpclient.exchange(url + "/b", kept=kept)[0] == 200  # sent on the closed one, then again on a new one
    assert [[r.split(" ")[1] for r in c] for c in received] == [["/a"], ["/b"]]
    kept.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",  # longer than accepted: not read to its end
], ids=["connection-close", "http-1.0", "cut-short"])  # fmt: skip
def test_an_answer_that_ends_the_connection_is_not_kept(answer):
    url, received = serving([answer], [OK])
    kept = httpclient.Kept()
    httpclient.exchange(url + "/a", kept=kept, max_bytes=4)
    assert kept.sock is None
    assert httpclient.exchange(url + "/b", kept=kept)[2] == b"{}"
    assert len(received) == 2 and received[1][0].startswith("GET /b ")
    kept.close()


def test_only_an_idempotent_request_uses_the_kept_connection():
    url, received = serving([OK, OK], [OK])
    kept = httpclient.Kept()
    httpclient.exchange(url + "/a", kept=kept)
    httpclient.exchange(url + "/r", "POST", body=b"{}", kept=kept)  # a new connection, closed after
    assert [r.split(" ")[1] for r in received[1]] == ["/r"] and "Connection: close" in received[1][0]
    assert kept.sock is not None and received[0] == [received[0][0]]
    kept.close()


def test_interim_answers_are_skipped_and_bytes_after_an_answer_end_the_connection():
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    url, received = serving([early + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst" + b"STALE-INJECTED"], [OK])
    kept = httpclient.Kept()
    assert httpclient.exchange(url + "/a", kept=kept)[::2] == (200, b"first")
    # what the server sent past its answer is no answer to the next request: a new connection asks
    assert httpclient.exchange(url + "/b", kept=kept)[2] == b"{}"
    assert [[r.split(" ")[1] for r in c] for c in received] == [["/a"], ["/b"]]
    kept.close()


@pytest.mark.parametrize("size", [b"-1", b"0x2", b"1_0", b" "])
def test_a_chunk_size_that_is_not_plain_hex_is_refused(size):
    url, _ = canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nab\r\n0\r\n\r\n")
    with pytest.raises(httpclient.BadAnswer, match="chunk size"):
        httpclient.exchange(url)


def test_a_request_that_cannot_be_written_leaves_the_kept_connection_free():
    kept = httpclient.Kept()
    with pytest.raises(UnicodeEncodeError):
        httpclient.exchange("http://127.0.0.1:9/", headers={"X-Name": "\u2603"}, kept=kept)
    assert kept.lock.acquire(blocking=False)
