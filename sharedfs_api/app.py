"""The FastAPI application: os-filesystem routes, the agents' long-poll view, errors as JSON with a reason."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, db
from .auth import Principal, TokenCache
from .drivers import make_driver
from .errors import ApiError, NotFound
from .schemas import FsEntryBody, InstanceBody, StateIn
from .service import Service
from .view import AgentView, Hub, PgNotifier

__all__ = ["Settings", "create_app"]

log = logging.getLogger(__name__)

TENANT = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="project id")
NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="filesystem name")
INSTANCE = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="instance id")
MAX_BODY = 64 * 1024


@dataclass
class Settings:
    db_url: str = db.DEFAULT_URL
    driver: str = "static"
    driver_options: Dict[str, str] = field(default_factory=dict)
    max_wait: int = 120  # the longest a long-poll is held; agents time out above it
    migrate: bool = True
    agent_wheels: Optional[str] = None  # directory of sharedfs_agent-*.whl served at /agent/simple/


class BodyLimit:
    """ASGI middleware: refuse request bodies over MAX_BODY, declared or streamed, with 413."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await _too_large(send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send) -> None:
    body = b'{"error":{"code":413,"message":"request body is larger than 65536 bytes"}}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status, headers=headers)


def _validation_message(request: Request, exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        message = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            where, message = "body", "request body is not valid JSON"
        elif where == "body" and "json" not in request.headers.get("content-type", ""):
            message = "send a JSON object with Content-Type: application/json"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def create_app(settings: Settings) -> FastAPI:
    engine = db.make_engine(settings.db_url)
    sessions = db.make_sessions(engine)
    hub = Hub()
    postgres = engine.dialect.name == "postgresql"
    notifier = PgNotifier(engine, hub) if postgres else None
    drivers = {"static": make_driver("static", {})}
    if settings.driver != "static":
        drivers[settings.driver] = make_driver(settings.driver, settings.driver_options)

    def changed() -> None:
        hub.changed()
        if notifier is not None:
            notifier.notify()

    service = Service(sessions, drivers, settings.driver, changed)
    tokens = TokenCache(sessions)
    view = AgentView(sessions, hub)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.migrate:
            await run_in_threadpool(db.upgrade, settings.db_url)
        for driver in drivers.values():
            await run_in_threadpool(driver.do_setup, {"db_url": settings.db_url})
        hub.bind(asyncio.get_running_loop())
        if notifier is not None:
            notifier.start()
        yield
        if notifier is not None:
            notifier.stop()
        engine.dispose()

    app = FastAPI(title="sharedfs os-filesystem API", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit)
    app.state.service, app.state.hub = service, hub

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error(400, _validation_message(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; see the server log")

    def principal(x_auth_token: Optional[str] = Header(default=None)) -> Principal:
        return tokens.resolve(x_auth_token)

    # -- os-filesystem ------------------------------------------------------------------------

    @app.get("/v1.1/{tenant}/os-filesystem", summary="list filesystems (own and global)")
    def list_filesystems(tenant: str = TENANT, who: Principal = Depends(principal)):
        return {"fs_entries": service.list_fs(who, tenant)}

    @app.put("/v1.1/{tenant}/os-filesystem/{name}", status_code=201, summary="create a filesystem")
    def put_filesystem(tenant: str = TENANT, name: str = NAME, body: FsEntryBody = Body(...),
                       who: Principal = Depends(principal)):  # fmt: skip
        code, entry = service.put_fs(who, tenant, name, body.fs_entry)
        return JSONResponse({"fs_entry": entry}, status_code=code)

    @app.get("/v1.1/{tenant}/os-filesystem/{name}", summary="show a filesystem")
    def get_filesystem(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal)):
        return {"fs_entry": service.get_fs(who, tenant, name)}

    @app.delete("/v1.1/{tenant}/os-filesystem/{name}", status_code=202, summary="delete a filesystem")
    def delete_filesystem(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal)):
        service.delete_fs(who, tenant, name)
        return Response(status_code=202)

    @app.get("/v1.1/{tenant}/os-filesystem/{name}/instances", summary="instances and their mount state")
    def filesystem_instances(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal)):
        return {"instances": service.fs_instances(who, tenant, name)}

    @app.put("/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}", status_code=201,
             summary="connect an instance")  # fmt: skip
    def connect(tenant: str = TENANT, name: str = NAME, instance_id: str = INSTANCE,
                who: Principal = Depends(principal)):  # fmt: skip
        code, instance = service.connect(who, tenant, name, instance_id)
        return JSONResponse({"instance": instance}, status_code=code)

    @app.delete("/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}", status_code=202,
                summary="disconnect an instance")  # fmt: skip
    def disconnect(tenant: str = TENANT, name: str = NAME, instance_id: str = INSTANCE,
                   who: Principal = Depends(principal)):  # fmt: skip
        service.disconnect(who, tenant, name, instance_id)
        return Response(status_code=202)

    # -- instances and the agents' view -------------------------------------------------------

    @app.get("/v1.1/{tenant}/os-instances", summary="list registered instances")
    def list_instances(tenant: str = TENANT, who: Principal = Depends(principal)):
        return {"instances": service.list_instances(who, tenant)}

    @app.put("/v1.1/{tenant}/os-instances/{instance_id}", status_code=201, summary="register an instance")
    def put_instance(tenant: str = TENANT, instance_id: str = INSTANCE, body: Optional[InstanceBody] = Body(None),
                     who: Principal = Depends(principal)):  # fmt: skip
        code, instance = service.put_instance(who, tenant, instance_id, (body or InstanceBody()).instance)
        return JSONResponse({"instance": instance}, status_code=code)

    @app.delete("/v1.1/{tenant}/os-instances/{instance_id}", status_code=202, summary="deregister an instance")
    def delete_instance(tenant: str = TENANT, instance_id: str = INSTANCE, who: Principal = Depends(principal)):
        service.delete_instance(who, tenant, instance_id)
        return Response(status_code=202)

    @app.get("/v1.1/{tenant}/os-instances/{instance_id}/filesystems",
             summary="the instance's effective set (ETag; If-None-Match; ?wait=N long-poll)")  # fmt: skip
    async def instance_filesystems(
        tenant: str = TENANT,
        instance_id: str = INSTANCE,
        wait: int = Query(
            0,
            ge=0,
            le=3600,
            description=f"hold up to N seconds (at most {settings.max_wait}) until the set differs from If-None-Match",
        ),  # fmt: skip
        if_none_match: Optional[str] = Header(default=None),
        x_auth_token: Optional[str] = Header(default=None),
    ):
        who = await run_in_threadpool(tokens.resolve, x_auth_token)
        who.require_instance(tenant, instance_id)
        deadline = time.monotonic() + min(wait, settings.max_wait)
        while True:
            event = hub.event  # taken before the snapshot: a change after this wakes us
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

    @app.put("/v1.1/{tenant}/os-instances/{instance_id}/filesystems/{name}/state",
             summary="report a filesystem's mount state on this instance")  # fmt: skip
    def report_state(tenant: str = TENANT, instance_id: str = INSTANCE, name: str = NAME, body: StateIn = Body(...),
                     who: Principal = Depends(principal)):  # fmt: skip
        service.report_state(who, tenant, instance_id, name, body)
        return {"state": body.state, "detail": body.detail}

    _agent_index(app, settings.agent_wheels)
    return app


_WHEEL = re.compile(r"sharedfs_agent-[0-9A-Za-z.+_]+-py3-none-any\.whl")


def _agent_index(app: FastAPI, directory: Optional[str]) -> None:
    """A PEP 503 simple index of the agent's wheel, so instances install it from this server
    (`pip install --index-url URL/agent/simple/ sharedfs-agent`) and need no other package index.
    Public: a wheel holds no secret."""

    def wheels() -> Dict[str, str]:
        if not directory or not os.path.isdir(directory):
            raise NotFound("this server serves no agent wheel (serve --agent-wheels DIR)")
        found = {}
        for name in sorted(os.listdir(directory)):
            if _WHEEL.fullmatch(name):
                with open(os.path.join(directory, name), "rb") as f:
                    found[name] = hashlib.file_digest(f, "sha256").hexdigest()
        return found

    def page(title: str, links: str) -> HTMLResponse:
        return HTMLResponse(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{links}</body></html>")

    @app.get("/agent/simple/", include_in_schema=False)
    def simple_root():
        wheels()
        return page("sharedfs agent", '<a href="sharedfs-agent/">sharedfs-agent</a>')

    @app.get("/agent/simple/sharedfs-agent/", include_in_schema=False)
    def simple_project():
        links = "".join(f'<a href="../../files/{n}#sha256={h}">{n}</a><br>' for n, h in wheels().items())
        return page("sharedfs-agent", links)

    @app.get("/agent/files/{filename}", include_in_schema=False)
    def wheel_file(filename: str):
        if filename not in wheels():
            raise NotFound(f"no agent wheel {filename!r}")
        return FileResponse(os.path.join(directory, filename), media_type="application/octet-stream")
