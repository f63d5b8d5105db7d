"""The agents' long-poll in its common case, answered beneath the framework; every other request goes on to the app's routes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Optional

from sharedfs_agent import wire

from .errors import ApiError, error_response
from .longpoll import MAX_WAIT_PARAM, answer, hold, shutting_down

__all__ = ["FastLane", "Lane"]

_PATH = re.compile(rf"/v1\.1/({wire.IDENT.pattern})/os-instances/({wire.IDENT.pattern})/filesystems")
_QUERY = re.compile(rb"(?:wait=(0|[1-9][0-9]{0,3}))?")  # as the agent asks; anything else the route parses


@dataclass
class Lane:
    """The fast lane's switch and count: tests turn it off to get the route's answer to the same request."""

    on: bool = True
    taken: int = 0  # requests it answered


class FastLane:
    """ASGI middleware, inside Shed and outside the app's own layers: a held long-poll woken by a
    change costs the fleet's fan-out once per agent, and through the framework most of that is
    its stack (some fifteen coroutine frames resumed and unwound, three send wrappers, an exit
    stack), not the answer. It takes only a request the route would answer with 200, 304 or the
    shutdown's 503 and nothing else: GET of exactly the path, `wait` alone as a plain 0..3600, no
    body, built-in tokens whose answer is remembered (no database), a principal allowed on the
    instance, the instance in the tenant's current snapshot. Anything else, a 401, 403, 404 or 400
    included, goes on unchanged to the route, which stays the one reference (docs/design.md,
    invariant 23). Both wait in longpoll.hold() and build their answers with the same functions."""

    def __init__(self, app, max_wait: int, lane: Lane) -> None:
        self.app, self.max_wait, self.lane = app, max_wait, lane

    async def __call__(self, scope, receive, send):
        asked = self._asked(scope)
        if asked is None:
            return await self.app(scope, receive, send)
        tenant, instance_id, wait, token, if_none_match = asked
        state = scope["app"].state
        if state.keystone is not None:
            return await self.app(scope, receive, send)
        try:
            who = state.tokens.cached(token)
            if who is not None:
                who.require_instance(tenant, instance_id)
        except ApiError:
            who = None  # the route answers it
        if who is None:
            return await self.app(scope, receive, send)
        view = state.view
        loaded = view.next_load()  # taken before the snapshot: a change after this resolves it
        snap = await view.snapshot()
        if snap.instances.get(instance_id) != tenant:
            return await self.app(scope, receive, send)  # perhaps registered since: the route asks the database
        self.lane.taken += 1
        state.last_seen.saw(instance_id)
        deadline = time.monotonic() + min(wait, self.max_wait)
        try:
            found = await hold(view, state.hub, scope, receive, snap, loaded, tenant, instance_id,
                               secrets=who.role == "instance", if_none_match=if_none_match, deadline=deadline)  # fmt: skip
        except ApiError as e:  # the instance left its project meanwhile: as the route's error handler answers
            response = error_response(e.status, e.message)
        else:
            response = shutting_down() if found is None else answer(*found, if_none_match)
        await response(scope, receive, send)

    def _asked(self, scope) -> Optional[tuple]:
        """(tenant, instance id, wait, token, If-None-Match) when the request is the common case, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path") or not self.lane.on:
            return None
        path = _PATH.fullmatch(scope["path"])
        query = _QUERY.fullmatch(scope["query_string"])
        if path is None or query is None:
            return None
        wait = int(query[1] or 0)
        if wait > MAX_WAIT_PARAM:
            return None
        token = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"x-auth-token":
                if token is not None:
                    return None
                token = value.decode("latin-1")
            elif name == b"if-none-match":
                if if_none_match is not None:
                    return None
                if_none_match = value.decode("latin-1")
            elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None  # a body: BodyLimit and the route decide
        if not token:
            return None
        return path[1], path[2], wait, token, if_none_match
