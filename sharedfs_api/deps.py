"""What every route depends on: the URL's names (patterns from the wire contract), the caller, the services."""

from __future__ import annotations

import hmac
from typing import Optional

from fastapi import Header, Path, Request

from sharedfs_agent import wire

from .auth import Principal, TokenCache
from .errors import Forbidden, Unauthorized
from .services import FilesystemService, InstanceService, LastSeen, Services
from .view import AgentView, Hub

__all__ = ["TENANT", "NAME", "INSTANCE", "principal", "caller", "nova", "tokens", "filesystems", "instances", "agent_view", "hub", "cached_caller",
           "last_seen"]

TENANT = Path(pattern=f"^{wire.IDENT.pattern}$", description="project id")
NAME = Path(pattern=f"^{wire.FS_NAME.pattern}$", description="filesystem name")
INSTANCE = Path(pattern=f"^{wire.IDENT.pattern}$", description="instance id")


def tokens(request: Request) -> TokenCache:
    return request.app.state.tokens


def principal(request: Request, x_auth_token: Optional[str] = Header(default=None)) -> Principal:
    """The caller, from X-Auth-Token: 401 when missing or unknown (what it may do, the services decide)."""
    return caller(request, x_auth_token)


def caller(request: Request, token: Optional[str]) -> Principal:
    """principal() for routes that read the header themselves (the long-poll). With Keystone
    (keystone.py), the call's policy rule is checked first: 403 before anything is looked up."""
    keystone = request.app.state.keystone
    if keystone is not None:
        route = request.scope.get("route")
        tenant = request.path_params.get("tenant", "")
        return keystone.principal(token, tenant, request.method, getattr(route, "path", ""))
    return tokens(request).resolve(token)


def cached_caller(request: Request, token: Optional[str]) -> Optional[Principal]:
    """caller() when built-in tokens remember the answer (no database), else None."""
    if request.app.state.keystone is not None:
        return None
    return tokens(request).cached(token)


def nova(request: Request, x_auth_token: Optional[str] = Header(default=None)) -> None:
    """The caller is Nova (its vendordata requests): with Keystone, a token policy
    sharedfs:vendordata:enroll allows (role `service`); with built-in tokens, the shared secret."""
    keystone = request.app.state.keystone
    if keystone is not None:
        keystone.authorize(x_auth_token, "sharedfs:vendordata:enroll", {})
        return
    secret = request.app.state.vendordata_secret
    if not secret:
        raise Forbidden("vendordata is off: start the server with --vendordata-secret-file")
    if not x_auth_token:
        raise Unauthorized("missing X-Auth-Token header")
    if not hmac.compare_digest(x_auth_token.encode(), secret.encode()):
        raise Unauthorized("X-Auth-Token is not the vendordata secret")


def _services(request: Request) -> Services:
    return request.app.state.services


def filesystems(request: Request) -> FilesystemService:
    return _services(request).filesystems


def instances(request: Request) -> InstanceService:
    return _services(request).instances


def agent_view(request: Request) -> AgentView:
    return request.app.state.view


def hub(request: Request) -> Hub:
    return request.app.state.hub


def last_seen(request: Request) -> LastSeen:
    return request.app.state.last_seen
