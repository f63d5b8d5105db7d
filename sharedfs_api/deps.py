"""What every route depends on: the URL's names (patterns from the wire contract), the caller, the services."""

from __future__ import annotations

from typing import Optional

from fastapi import Header, Path, Request

from sharedfs_agent import wire

from .auth import Principal, TokenCache
from .services import FilesystemService, InstanceService, Services
from .view import AgentView, Hub

__all__ = ["TENANT", "NAME", "INSTANCE", "principal", "tokens", "filesystems", "instances", "agent_view", "hub"]

TENANT = Path(pattern=f"^{wire.IDENT.pattern}$", description="project id")
NAME = Path(pattern=f"^{wire.FS_NAME.pattern}$", description="filesystem name")
INSTANCE = Path(pattern=f"^{wire.IDENT.pattern}$", description="instance id")


def tokens(request: Request) -> TokenCache:
    return request.app.state.tokens


def principal(request: Request, x_auth_token: Optional[str] = Header(default=None)) -> Principal:
    """The caller, from X-Auth-Token: 401 when missing or unknown (what it may do, the services decide).
    With Keystone (keystone.py), the call's policy rule is checked here first: 403 before any lookup."""
    keystone = request.app.state.keystone
    if keystone is not None:
        route = request.scope.get("route")
        tenant = request.path_params.get("tenant", "")
        return keystone.principal(x_auth_token, tenant, request.method, getattr(route, "path", ""))
    return tokens(request).resolve(x_auth_token)


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
