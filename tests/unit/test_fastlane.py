"""The fast lane (sharedfs_api/fastlane.py) answers the agents' common GET exactly as the route does, and leaves every other request to the route."""

from __future__ import annotations

import asyncio

import pytest

from sharedfs_api import db, longpoll
from sharedfs_api.app import Settings, create_app
from sharedfs_api.auth import TokenCache, store_token
from sharedfs_api.scope import CONNECTION_LOST

PATH = "/v1.1/p1/os-instances/i1/filesystems"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """An app whose token answers are remembered (as on PostgreSQL), instances i1 and i2 of p1,
    their tokens, and one project filesystem."""
    monkeypatch.setattr(longpoll.random, "randint", lambda lo, hi: hi)  # the shutdown's Retry-After
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    app = create_app(Settings(db_url=url, migrate=False, max_busy=1, max_lag=0.5))
    sessions = db.make_sessions(db.make_engine(url))
    app.state.tokens = TokenCache(sessions, generation=lambda: app.state.hub.generation)
    with sessions() as session:
        session.add_all([db.Instance(id="i1", project="p1", addresses_json="[]"),
                         db.Instance(id="i2", project="p1", addresses_json="[]")])  # fmt: skip
        session.commit()
    add_filesystem(sessions, "first")
    tokens = {who: store_token(sessions, "instance", "p1", who) for who in ("i1", "i2")}
    tokens["project"] = store_token(sessions, "project", "p1", None)
    return app, sessions, tokens


def add_filesystem(sessions, name: str) -> None:
    with sessions() as session:
        session.add(db.Filesystem(project="p1", name=name, size="1Gb", size_bytes=1 << 30, scope="project",
                                  export=f"gl1:/{name}", fs_type="glusterfs", mount_point=f"/mnt/{name}",
                                  driver="static", status="available"))  # fmt: skip
        session.commit()


async def call(app, token=None, query=b"", if_none_match=None, path=PATH, method="GET", extra=(),
               lost=None) -> tuple:  # fmt: skip
    """The request through the whole ASGI app: (status, raw headers, body, the messages sent)."""
    headers = [(b"host", b"testserver")]
    if token is not None:
        headers.append((b"x-auth-token", token.encode()))
    if if_none_match is not None:
        headers.append((b"if-none-match", if_none_match.encode()))
    headers += list(extra)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("testserver", 80)}  # fmt: skip
    if lost is not None:
        scope[CONNECTION_LOST] = lambda: lost
    pending = [{"type": "http.request", "body": b"", "more_body": False}]
    gone = lost if lost is not None else asyncio.get_running_loop().create_future()

    async def receive():
        if pending:
            return pending.pop()
        await gone
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], sent[0]["headers"], body, sent


def run(app, scenario):
    async def main():
        async with app.router.lifespan_context(app):
            await call(app, "unknown")  # a first read of every token: remembered from here (the cache's bulk read)
            return await scenario()

    return asyncio.run(main())


async def both(app, *args, **kwargs) -> tuple:
    """The same request through the fast lane and through the route: (lane's, route's, taken by the lane)."""
    lane = app.state.fast_lane
    taken = lane.taken
    fast = await call(app, *args, **kwargs)
    lane.on = False
    try:
        route = await call(app, *args, **kwargs)
    finally:
        lane.on = True
    return fast, route, lane.taken - taken


def test_200_and_304_are_the_routes_to_the_byte_in_two_messages(world):
    app, _, tokens = world

    async def scenario():
        fast, route, taken = await both(app, tokens["i1"])
        etag = dict(fast[1])[b"etag"].decode()
        fast304, route304, taken304 = await both(app, tokens["i1"], b"wait=0", etag)
        stale, route_stale, taken_stale = await both(app, tokens["project"], b"wait=30", '"old"')
        return fast, route, taken, fast304, route304, taken304, stale, route_stale, taken_stale

    fast, route, taken, fast304, route304, taken304, stale, route_stale, taken_stale = run(app, scenario)
    assert taken == 1 and fast[0] == 200 and fast[3] == route[3]  # every message, every header byte
    assert [m["type"] for m in fast[3]] == ["http.response.start", "http.response.body"]
    assert dict(fast[1]) == {b"etag": dict(fast[1])[b"etag"], b"cache-control": b"no-store",
                             b"content-length": str(len(fast[2])).encode(), b"content-type": b"application/json"}  # fmt: skip
    assert b'"first"' in fast[2]
    assert taken304 == 1 and fast304[0] == 304 and fast304[3] == route304[3] and fast304[2] == b""
    assert taken_stale == 1 and stale[0] == 200 and stale[3] == route_stale[3]  # a project token: no secrets either way


def test_every_other_request_goes_to_the_route(world):
    app, _, tokens = world
    i1 = tokens["i1"]
    cases = [
        ({}, 401),  # no token
        ({"token": "nonsense"}, 401),
        ({"token": tokens["i2"]}, 403),  # another instance's token
        ({"token": i1, "path": "/v1.1/p1/os-instances/nosuch/filesystems"}, 403),
        ({"token": tokens["project"], "path": "/v1.1/p1/os-instances/nosuch/filesystems"}, 404),
        ({"token": tokens["project"], "path": "/v1.1/p2/os-instances/i1/filesystems"}, 403),
        ({"token": i1, "query": b"wait=abc"}, 400),
        ({"token": i1, "query": b"wait=3601"}, 400),
        ({"token": i1, "query": b"wait=-1"}, 400),
        ({"token": i1, "query": b"wait=0&other=1"}, 200),  # FastAPI ignores it: the route's answer
        ({"token": i1, "query": b"wait=00"}, 200),
        ({"token": i1, "extra": [(b"x-auth-token", b"second")]}, 200),
        ({"token": i1, "extra": [(b"content-length", b"3")]}, 200),
        ({"token": i1, "method": "HEAD"}, 405),
        ({"token": i1, "path": PATH + "/"}, 307),
    ]

    async def scenario():
        return [await both(app, **kwargs) for kwargs, _ in cases]

    for (kwargs, status), (fast, route, taken) in zip(cases, run(app, scenario)):
        assert taken == 0, kwargs
        assert fast[0] == route[0] == status, kwargs
        assert fast[3] == route[3], kwargs


def test_a_token_not_remembered_goes_to_the_route(world):
    app, sessions, tokens = world
    app.state.tokens = TokenCache(sessions)  # SQLite's: nothing remembered, every answer read in a thread

    async def scenario():
        return await both(app, tokens["i1"])

    fast, route, taken = run(app, scenario)
    assert taken == 0 and fast[0] == 200 and fast[3] == route[3]


def test_a_held_poll_wakes_with_the_change_notes_the_agent_and_does_not_count_as_work(world):
    app, sessions, tokens = world  # max_busy=1

    async def scenario():
        etag = dict((await call(app, tokens["i1"]))[1])[b"etag"].decode()
        app.state.last_seen.pending.clear()
        held = asyncio.ensure_future(call(app, tokens["i1"], b"wait=30", etag))
        for _ in range(100):
            await asyncio.sleep(0.01)
        meanwhile = await call(app, tokens["i2"], path=PATH.replace("i1", "i2"))  # the held poll is not at work: this one is not shed
        add_filesystem(sessions, "second")
        app.state.hub.changed()
        woken = await asyncio.wait_for(held, 10)
        app.state.fast_lane.on = False
        now = await call(app, tokens["i1"])  # what the route answers after the change
        return meanwhile, woken, now, dict(app.state.last_seen.pending)

    meanwhile, woken, now, seen = run(app, scenario)
    assert meanwhile[0] == 200
    assert woken[0] == 200 and b'"second"' in woken[2] and woken[3] == now[3]
    assert "i1" in seen


def test_shutdown_and_a_departed_client_end_a_held_poll_with_the_routes_503(world):
    app, _, tokens = world

    async def scenario():
        etag = dict((await call(app, tokens["i1"]))[1])[b"etag"].decode()
        lost = asyncio.get_running_loop().create_future()
        left = asyncio.ensure_future(call(app, tokens["i1"], b"wait=30", etag, lost=lost))
        await asyncio.sleep(0.1)
        lost.set_result(None)  # the server saw the connection go (server.py)
        left = await asyncio.wait_for(left, 10)
        held = asyncio.ensure_future(call(app, tokens["i1"], b"wait=30", etag))
        await asyncio.sleep(0.1)
        app.state.hub.close()
        closed = await asyncio.wait_for(held, 10)
        after = await both(app, tokens["i1"], b"wait=30", etag)  # arriving during shutdown
        return left, closed, after

    left, closed, (fast, route, taken) = run(app, scenario)
    assert left[0] == closed[0] == 503
    assert dict(closed[1])[b"retry-after"] == b"3" and dict(closed[1])[b"connection"] == b"close"
    assert taken == 1 and fast[3] == route[3] == closed[3]


def test_an_instance_gone_while_held_is_the_routes_404(world):
    app, sessions, tokens = world

    async def scenario():
        etag = dict((await call(app, tokens["project"]))[1])[b"etag"].decode()
        held = asyncio.ensure_future(call(app, tokens["project"], b"wait=30", etag))
        await asyncio.sleep(0.1)
        with sessions() as session:
            session.delete(session.get(db.Instance, "i1"))
            session.commit()
        app.state.hub.changed()
        gone = await asyncio.wait_for(held, 10)
        app.state.fast_lane.on = False
        return gone, await call(app, tokens["project"])

    gone, route = run(app, scenario)
    assert gone[0] == 404 and gone[3] == route[3]


def test_shedding_applies_to_the_fast_lane(world):
    app, _, tokens = world

    async def scenario():
        app.state.loop_lag.seconds = 2.0  # the loop is late beyond --max-lag 0.5
        return await call(app, tokens["i1"]), app.state.fast_lane.taken

    shed, taken = run(app, scenario)
    assert shed[0] == 503 and b"busy" in shed[2] and taken == 0
