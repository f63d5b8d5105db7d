"""The serving protocol (sharedfs_api/server.py) writes a response's head and body in one write, keep-alive or not, tells a held request that its client left, and leaves no reference cycle behind a finished request."""

from __future__ import annotations

import asyncio
import gc

import uvicorn
from uvicorn.server import ServerState

from sharedfs_api import db
from sharedfs_api.app import Settings, create_app
from sharedfs_api.auth import TokenCache, store_token
from sharedfs_api.scope import connection_lost
from sharedfs_api.server import Limits, _protocol
from sharedfs_api.services.worker import Worker
from tests.unit.test_fastlane import PATH, add_filesystem


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


def test_a_finished_held_poll_leaves_nothing_for_the_cycle_collector(tmp_path, monkeypatch):
    """A fan-out ends 10,000 held polls at once: what they leave in reference cycles waits for a
    full collection, which stops the event loop for its whole length (docs/benchmarks.md)."""
    monkeypatch.setattr(Worker, "start", lambda self: None)  # its thread's database work would make garbage of its own
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    app = create_app(Settings(db_url=url, migrate=False))
    sessions = db.make_sessions(db.make_engine(url))
    # Tokens remembered, as on PostgreSQL: the fast lane's case.
    app.state.tokens = TokenCache(sessions, generation=lambda: app.state.hub.generation)
    with sessions() as session:
        session.add(db.Instance(id="i1", project="p1", addresses_json="[]"))
        session.commit()
    token = store_token(sessions, "instance", "p1", "i1")
    config = uvicorn.Config(app, http=_protocol(Limits()), lifespan="off", log_level="warning")
    config.load()
    changes = iter(range(1000))

    async def poll(if_none_match=None):
        """A held poll's connection: (protocol, its transport, its server state) once the request is in."""
        state = ServerState()
        protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        headers = f"X-Auth-Token: {token}\r\n" + (f"If-None-Match: {if_none_match}\r\n" if if_none_match else "")
        protocol.data_received(f"GET {PATH}?wait=30 HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        await asyncio.sleep(0.05)
        return protocol, transport, state

    async def etag() -> str:
        protocol, transport, state = await poll()
        await asyncio.gather(*state.tasks)
        protocol.connection_lost(None)
        head = transport.writes[0].split(b"\r\n\r\n")[0]
        return dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"etag"].decode()

    async def answered() -> None:
        protocol, transport, state = await poll(await etag())
        assert transport.writes == []  # held
        add_filesystem(sessions, f"fs{next(changes)}")
        app.state.hub.changed()
        await asyncio.gather(*state.tasks)
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
        protocol.connection_lost(None)  # then the client closes its connection

    async def left() -> None:
        protocol, transport, state = await poll(await etag())
        protocol.connection_lost(None)
        await asyncio.gather(*state.tasks)
        assert transport.writes == []

    async def garbage_after(case) -> int:
        """The objects that only the cycle collector frees, after one case, run in a frame of its own."""
        gc.collect()
        await case()
        await asyncio.sleep(0)  # uvicorn's completion callbacks
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            return len(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    async def main():
        async with app.router.lifespan_context(app):
            await answered()  # once first: whatever is made on first use is not the request's
            await left()
            return {"answered": await garbage_after(answered), "left": await garbage_after(left)}

    gc.disable()
    try:
        left_behind = asyncio.run(main())
    finally:
        gc.enable()
    assert left_behind == {"answered": 0, "left": 0}
