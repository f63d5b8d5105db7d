"""The agents' side: an instance's effective set (ETag, long-poll) and its reports of mount state."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Optional

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..deps import INSTANCE, NAME, TENANT, agent_view, cached_caller, caller, hub, instances, last_seen, principal
from ..errors import NotFound
from ..schemas import StateIn
from ..scope import connection_lost
from ..services import InstanceService
from ..shed import holding

__all__ = ["make_router"]


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (a GET's body is empty, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
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


def _shutting_down() -> Response:
    """The server is stopping: the agent keeps what it has and comes back after Retry-After
    (spread over a few seconds so a fleet does not return in one instant)."""
    return JSONResponse({"error": {"code": 503, "message": "the server is restarting; try again shortly"}},
                        status_code=503, headers={"Retry-After": str(random.randint(1, 3)), "Connection": "close"})  # fmt: skip


def make_router(max_wait: int) -> APIRouter:
    """A function, not a module-level router: the long-poll's documented limit is the server's --max-wait."""
    router = APIRouter(prefix="/v1.1/{tenant}/os-instances/{instance_id}/filesystems")

    @router.get("", summary="the instance's effective set (ETag; If-None-Match; ?wait=N long-poll)")
    async def instance_filesystems(
        request: Request,
        tenant: str = TENANT,
        instance_id: str = INSTANCE,
        wait: int = Query(
            0,
            ge=0,
            le=3600,
            description=f"hold up to N seconds (at most {max_wait}) until the set differs from If-None-Match",
        ),  # fmt: skip
        if_none_match: Optional[str] = Header(default=None),
        x_auth_token: Optional[str] = Header(default=None),
    ):
        started = time.monotonic()
        # The token is resolved here, after the parameters are validated, as for every other route;
        # on the loop when its answer is remembered (a thread hop costs more than the lookup).
        who = cached_caller(request, x_auth_token) or await run_in_threadpool(caller, request, x_auth_token)
        who.require_instance(tenant, instance_id)
        last_seen(request).saw(instance_id)  # in memory; written once a minute (services/last_seen.py)
        view, changes = agent_view(request), hub(request)
        deadline = time.monotonic() + min(wait, max_wait)
        loaded = view.next_load()  # taken before the snapshot: a change after this resolves it
        snap = await view.snapshot()
        if snap.instances.get(instance_id) != tenant and await view.project_of(instance_id) == tenant:
            # Registered since the snapshot by a process that cannot tell this one (nova-listener
            # or the CLI on SQLite): a snapshot loaded since this request began has it. Only then:
            # an unknown id costs one row's read, not a load of every view.
            snap = await view.snapshot(loaded_since=started)
        lost: Optional[asyncio.Future] = None  # a client that leaves frees its handler at once
        reader: Optional[asyncio.Future] = None  # reads the request's end when the server offers no `lost`
        try:
            while True:
                if snap.instances.get(instance_id) != tenant:
                    raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}")
                body, etag = view.document(snap, instance_id, secrets=who.role == "instance")
                remaining = deadline - time.monotonic()
                if if_none_match != etag or remaining <= 0:
                    break
                if changes.closing:
                    return _shutting_down()
                holding(request.scope)  # from here this request waits: it is not counted as work (shed.py)
                if lost is None:
                    lost = connection_lost(request.scope)
                    if lost is None:
                        lost = reader = asyncio.ensure_future(_disconnected(request))
                await _first(loaded, lost, timeout=remaining)
                if lost.done():
                    return _shutting_down()  # nobody reads it: uvicorn drops what is sent to a closed connection
                loaded = view.next_load()
                snap = await view.snapshot()  # the one just loaded (a change during its load loads again)
        finally:
            if reader is not None:
                reader.cancel()
        headers = {"ETag": etag, "Cache-Control": "no-store"}
        if if_none_match == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.put("/{name}/state", summary="report a filesystem's mount state on this instance")
    def report_state(tenant: str = TENANT, instance_id: str = INSTANCE, name: str = NAME, body: StateIn = Body(...),
                     who: Principal = Depends(principal), service: InstanceService = Depends(instances)):  # fmt: skip
        service.report_state(who, tenant, instance_id, name, body)
        return {"state": body.state, "detail": body.detail}

    return router
