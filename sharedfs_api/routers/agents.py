"""The agents' side: an instance's effective set (ETag, long-poll) and its reports of mount state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Optional

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..deps import INSTANCE, NAME, TENANT, agent_view, caller, hub, instances, last_seen, principal
from ..errors import NotFound
from ..schemas import StateIn
from ..services import InstanceService

__all__ = ["make_router"]


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
        # The token is resolved here, after the parameters are validated, as for every other route.
        who = await run_in_threadpool(caller, request, x_auth_token)
        who.require_instance(tenant, instance_id)
        last_seen(request).saw(instance_id)  # in memory; written once a minute (services/last_seen.py)
        view, changes = agent_view(request), hub(request)
        deadline = time.monotonic() + min(wait, max_wait)
        while True:
            event = changes.event  # taken before the snapshot: a change after this wakes us
            snap = await view.snapshot()
            if snap.instances.get(instance_id) != tenant:
                raise NotFound(f"instance {instance_id!r} is not registered in project {tenant!r}")
            body, etag = view.document(snap, instance_id)
            remaining = deadline - time.monotonic()
            if if_none_match != etag or remaining <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
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
