"""Load shedding: a bound on requests at work at once and on the event loop's lag; over either, 503 + Retry-After."""

from __future__ import annotations

import random
import time
from typing import Callable, Optional, Tuple

__all__ = ["Shed", "LoopLag", "HOLDING", "holding"]

# The scope key under which the long-poll finds the call that says "from here I only wait".
HOLDING = "sharedfs.holding"


def holding(scope: dict) -> None:
    """Called by a handler when it starts to wait (a held long-poll): its request no longer counts."""
    release = scope.get(HOLDING)
    if release is not None:
        release()


class LoopLag:
    """How late the event loop last ran a periodic tick (uvicorn's 0.1 s tick, server.py): the
    time a request that arrives now waits before the loop reads it."""

    def __init__(self, interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self.last: Optional[float] = None
        self.seconds = 0.0

    def tick(self) -> None:
        now = self.clock()
        if self.last is not None:
            self.seconds = max(0.0, now - self.last - self.interval)
        self.last = now


class Shed:
    """ASGI middleware: at most `limit` requests at work at once in this process; the next one is
    answered 503 with a Retry-After spread over `retry_after` seconds, before any token or
    database is touched, so a fleet coming back from an outage is told when to come back instead
    of queueing behind itself (every request's latency growing with the queue). Held long-polls
    do not count: 20,000 of them cost memory and no work. limit <= 0: no bound.

    The bound on work does not see requests still waiting for the event loop to read them (a
    process whose loop is behind, parsing a thousand new connections, serves each request
    quickly, late): while the loop's lag is over `max_lag` seconds, new requests are shed too.
    max_lag <= 0 or no `lag`: no such bound."""

    def __init__(self, app, limit: int, lag: Optional[LoopLag] = None, max_lag: float = 0.5,
                 retry_after: Tuple[int, int] = (1, 4), rng: Callable[[int, int], int] = random.randint) -> None:  # fmt: skip
        self.app, self.limit, self.lag, self.max_lag = app, limit, lag, max_lag
        self.retry_after, self.rng = retry_after, rng
        self.busy = 0  # requests at work now
        self.shed = 0  # requests answered 503 since the start (for logs and benches)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        behind = self.lag is not None and 0 < self.max_lag < self.lag.seconds
        if behind or 0 < self.limit <= self.busy:
            self.shed += 1
            return await self._overloaded(send)
        self.busy += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.busy -= 1

        async def sending(message):
            if message["type"] == "http.response.start":
                release()  # the work is done; what is left is the socket's
            await send(message)

        scope[HOLDING] = release
        try:
            await self.app(scope, receive, sending)
        finally:
            release()

    async def _overloaded(self, send) -> None:
        # Spread, not one value: told "5", a fleet comes back at the same instant.
        seconds = str(self.rng(*self.retry_after)).encode()
        body = b'{"error":{"code":503,"message":"the server is busy; try again after Retry-After seconds"}}'
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", seconds)]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
