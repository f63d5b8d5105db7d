"""The agents' long-poll, once for the route and the fast lane: hold until the set differs, the deadline, the client's leaving or shutdown."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Callable, Optional, Tuple

from starlette.responses import JSONResponse, Response

from .errors import NotFound
from .scope import connection_lost
from .shed import holding
from .view import AgentView, Hub, Snapshot

__all__ = ["hold", "answer", "shutting_down", "MAX_WAIT_PARAM"]

# The largest `wait` a request may name (the server's --max-wait caps what it is held): the route
# validates it, the fast lane takes no request above it, so both answer the same requests.
MAX_WAIT_PARAM = 3600


async def _disconnected(receive: Callable) -> None:
    """Returns when the client has gone (a GET's body is empty, so the next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _first(*futures: asyncio.Future, timeout: float) -> None:
    """Returns when one of the futures is done or timeout seconds pass; cancels none of them
    (the view's future is shared by every waiter). asyncio.wait, without its task and sets:
    the fan-out pays this once per held poll."""
    waiter = asyncio.get_running_loop().create_future()

    def wake(_=None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for future in futures:
        future.add_done_callback(wake)
    timer = asyncio.get_running_loop().call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        for future in futures:
            future.remove_done_callback(wake)


async def hold(view: AgentView, hub: Hub, scope: dict, receive: Callable, snap: Snapshot, loaded: asyncio.Future,
               tenant: str, instance_id: str, secrets: bool, if_none_match: Optional[str],
               deadline: float) -> Optional[Tuple[bytes, str]]:  # fmt: skip
    """The instance's (body, etag) once it differs from if_none_match or the deadline (monotonic)
    has passed; None when the server is shutting down or the client left (both answered with
    shutting_down(): a gone client reads nothing). NotFound once the instance is not the
    tenant's in the snapshot. `loaded` is view.next_load() taken before `snap` was read.

    The caller has checked the token and found the instance (the route, or the fast lane, which
    sits inside Shed: holding() tells Shed that this request no longer counts as work)."""
    lost: Optional[asyncio.Future] = None  # a client that leaves frees its handler at once
    reader: Optional[asyncio.Future] = None  # reads the request's end when the server offers no `lost`
    try:
        while True:
            if snap.instances.get(instance_id) != tenant:
                raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}")
            body, etag = view.document(snap, instance_id, secrets=secrets)
            remaining = deadline - time.monotonic()
            if if_none_match != etag or remaining <= 0:
                return body, etag
            if hub.closing:
                return None
            holding(scope)  # from here this request waits: it is not counted as work (shed.py)
            if lost is None:
                lost = connection_lost(scope)
                if lost is None:
                    lost = reader = asyncio.ensure_future(_disconnected(receive))
            await _first(loaded, lost, timeout=remaining)
            if lost.done():
                return None  # nobody reads it: uvicorn drops what is sent to a closed connection
            loaded = view.next_load()
            snap = await view.snapshot()  # the one just loaded (a change during its load loads again)
    finally:
        if reader is not None:
            reader.cancel()


def answer(body: bytes, etag: str, if_none_match: Optional[str]) -> Response:
    """304 when the client has this ETag, else the document; never stored by a cache between."""
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def shutting_down() -> Response:
    """The server is stopping: the agent keeps what it has and comes back after Retry-After
    (spread over a few seconds so a fleet does not return in one instant)."""
    return JSONResponse({"error": {"code": 503, "message": "the server is restarting; try again shortly"}},
                        status_code=503, headers={"Retry-After": str(random.randint(1, 3)), "Connection": "close"})  # fmt: skip
