"""The agents' side: an instance's effective set (ETag, long-poll) and its reports of mount state."""

from __future__ import annotations

import time
from typing import Optional

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..deps import INSTANCE, NAME, TENANT, agent_view, cached_caller, caller, hub, instances, last_seen, principal
from ..longpoll import MAX_WAIT_PARAM, answer, hold, shutting_down
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
            le=MAX_WAIT_PARAM,
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
        found = await hold(view, changes, request.scope, request.receive, snap, loaded, tenant, instance_id,
                           secrets=who.role == "instance", if_none_match=if_none_match, deadline=deadline)  # fmt: skip
        return shutting_down() if found is None else answer(*found, if_none_match)

    @router.put("/{name}/state", summary="report a filesystem's mount state on this instance")
    def report_state(tenant: str = TENANT, instance_id: str = INSTANCE, name: str = NAME, body: StateIn = Body(...),
                     who: Principal = Depends(principal), service: InstanceService = Depends(instances)):  # fmt: skip
        service.report_state(who, tenant, instance_id, name, body)
        return {"state": body.state, "detail": body.detail}

    return router
