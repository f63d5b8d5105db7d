"""The serving protocol (sharedfs_api/server.py) writes a response's head and body in one write, keep-alive or not, and tells a held request that its client left."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from sharedfs_api.scope import connection_lost
from sharedfs_api.server import Limits, _protocol


class Transport:
    """What uvicorn's protocol uses of a socket's transport; every write kept."""

    def __init__(self) -> None:
        self.writes: list = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def serve(requests: bytes, app) -> Transport:
    """The requests through a fresh connection of the server's protocol, until `app` has answered them all."""
    config = uvicorn.Config(app, http=_protocol(Limits()), lifespan="off", log_level="warning")
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(requests)
    await app.done
    await asyncio.sleep(0)  # uvicorn's completion callbacks
    protocol.connection_lost(None)
    return transport


class Answering:
    """Answers `count` requests with a head and a body, each in its own ASGI message."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.done = asyncio.get_running_loop().create_future()

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        self.count -= 1
        if self.count == 0:
            self.done.set_result(None)


def test_head_and_body_leave_in_one_write_on_keep_alive_and_close():
    async def main():
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        kept = await serve(request * 2, Answering(2))  # two on one connection (the second pipelined)
        closing = await serve(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Answering(1))
        return kept, closing

    kept, closing = asyncio.run(main())
    assert len(kept.writes) == 2 and all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"\r\n\r\nok")
                                         for w in kept.writes)  # fmt: skip
    assert len(closing.writes) == 1 and b"connection: close\r\n" in closing.writes[0] and closing.closed
    assert closing.writes[0].endswith(b"\r\n\r\nok")


def test_a_held_request_learns_that_its_client_left():
    async def main():
        loop = asyncio.get_running_loop()
        left = loop.create_future()

        async def app(scope, receive, send):
            await connection_lost(scope)
            left.set_result(None)

        config = uvicorn.Config(app, http=_protocol(Limits()), lifespan="off", log_level="warning")
        config.load()
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0)
        assert not left.done()
        protocol.connection_lost(None)
        await asyncio.wait_for(left, 5)
        return transport

    assert asyncio.run(main()).writes == []  # nothing sent to a client that left
