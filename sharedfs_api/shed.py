"""Load shedding: a bound on requests at work at once (a held long-poll waits, it does not work); over it, 503 + Retry-After."""

from __future__ import annotations

import random
from typing import Callable, Tuple

__all__ = ["Shed", "HOLDING", "holding"]

# The scope key under which the long-poll finds the call that says "from here I only wait".
HOLDING = "sharedfs.holding"


def holding(scope: dict) -> None:
    """Called by a handler when it starts to wait (a held long-poll): its request no longer counts."""
    release = scope.get(HOLDING)
    if release is not None:
        release()


class Shed:
    """ASGI middleware: at most `limit` requests at work at once in this process; the next one is
    answered 503 with a Retry-After spread over `retry_after` seconds, before any token or
    database is touched, so a fleet coming back from an outage is told when to come back instead
    of queueing behind itself (every request's latency growing with the queue). Held long-polls
    do not count: 20,000 of them cost memory and no work. limit <= 0: no bound."""

    def __init__(self, app, limit: int, retry_after: Tuple[int, int] = (1, 4),
                 rng: Callable[[int, int], int] = random.randint) -> None:  # fmt: skip
        self.app, self.limit, self.retry_after, self.rng = app, limit, retry_after, rng
        self.busy = 0  # requests at work now
        self.shed = 0  # requests answered 503 since the start (for logs and benches)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        if self.busy >= self.limit:
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
