"""Load shedding (sharedfs_api/shed.py) as ASGI: the bound on work, held polls not counted, the loop's lag, Retry-After."""

from __future__ import annotations

import asyncio

from sharedfs_api.shed import LoopLag, Shed, holding


def scope() -> dict:
    return {"type": "http", "method": "GET", "path": "/", "headers": []}


class App:
    """Each request waits on `go`; a poll says it is holding first."""

    def __init__(self) -> None:
        self.go = asyncio.Event()

    async def __call__(self, scope, receive, send):
        if scope["path"] == "/poll":
            holding(scope)
        await self.go.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(shed: Shed, path: str = "/") -> tuple:
    sent: list = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    await shed({**scope(), "path": path}, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


def test_over_the_bound_is_shed_with_a_spread_retry_after_and_held_polls_do_not_count():
    async def run():
        app = App()
        shed = Shed(app, limit=2, rng=lambda lo, hi: hi)
        polls = [asyncio.ensure_future(call(shed, "/poll")) for _ in range(10)]
        working = [asyncio.ensure_future(call(shed)) for _ in range(2)]
        await asyncio.sleep(0)
        assert shed.busy == 2  # ten polls held, two at work
        status, headers = await call(shed)
        app.go.set()
        done = await asyncio.gather(*polls, *working)
        return status, headers, done, shed

    status, headers, done, shed = asyncio.run(run())
    assert status == 503 and headers[b"retry-after"] == b"4" and shed.shed == 1
    assert [s for s, _ in done] == [200] * 12 and shed.busy == 0


def test_while_the_loop_lags_new_requests_are_shed():
    now = [100.0]
    lag = LoopLag(interval=0.1, clock=lambda: now[0])
    lag.tick()
    now[0] += 0.9  # the 0.1 s tick ran 0.8 s late
    lag.tick()
    assert abs(lag.seconds - 0.8) < 1e-9

    async def run(shed):
        app = shed.app
        app.go.set()
        return await call(shed)

    assert asyncio.run(run(Shed(App(), limit=0, lag=lag, max_lag=0.5)))[0] == 503
    assert asyncio.run(run(Shed(App(), limit=0, lag=lag, max_lag=0)))[0] == 200  # 0: no such bound
    now[0] += 0.1
    lag.tick()  # on time again
    assert asyncio.run(run(Shed(App(), limit=0, lag=lag, max_lag=0.5)))[0] == 200
