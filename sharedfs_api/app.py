"""The FastAPI application: settings, what a server holds (backends, services, view), errors as JSON, the routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, db
from .auth import TokenCache
from .backends import BackendConfig, Backends
from .errors import ApiError, Unauthorized, error_response
from .fastlane import FastLane, Lane
from .routers import agents, dashboard, filesystems, instances, vendordata
from .routers.agent_index import agent_index
from .services import FLUSH_INTERVAL, LastSeen, make_services
from .services.sessions import DashboardSessions
from .shed import LoopLag, Shed
from .view import AgentView, Hub, PgNotifier

__all__ = ["Settings", "create_app"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


@dataclass
class Settings:
    db_url: str = db.DEFAULT_URL
    backends: Sequence[BackendConfig] = ()  # besides the built-in static one (docs/api.md, "Backends")
    max_wait: int = 120  # the longest a long-poll is held; agents time out above it
    migrate: bool = True
    agent_wheels: Optional[str] = None  # directory of sharedfs_agent-*.whl served at /agent/simple/
    auth: str = "tokens"  # tokens (built in) | keystone (docs/api.md, "Authentication")
    openstack_config: Optional[str] = None  # oslo.config file: [keystone_authtoken], [oslo_policy]
    vendordata_secret: Optional[str] = None  # what Nova sends as X-Auth-Token for vendordata (--auth tokens)
    public_url: Optional[str] = None  # the API URL vendordata hands instances (default: the URL Nova called)
    ca_pem: Optional[str] = None  # the CA instances should trust for it
    reconcile_every: float = 300.0  # seconds between reconciles of drivers against rows (also at start)
    delete_wait: float = 600.0  # the longest a delete waits for its instances to unmount before the driver deletes
    max_busy: int = 256  # requests at work at once; more are answered 503 + Retry-After (shed.py); 0: no bound
    max_lag: float = 0.0  # seconds the event loop may run late before new requests are shed too; 0: off (the default)


class BodyLimit:
    """ASGI middleware: refuse request bodies over MAX_BODY, declared or streamed (chunked), with 413.

    The body is read here, whole, before the app sees it: raised from inside the app's receive, the
    refusal would be turned into a 400 by the framework's body parsing."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await _too_large(send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left; the app sees that as it would have
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > MAX_BODY:
                return await _too_large(send)
            if not message.get("more_body"):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending = [message]

        async def replay():
            # The body once, then the real receive: a long-poll waits on it for the disconnect.
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


async def _too_large(send) -> None:
    body = b'{"error":{"code":413,"message":"request body is larger than 65536 bytes"}}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


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
    """The app and what it holds; ValueError for a backend configuration it cannot run."""
    engine = db.make_engine(settings.db_url)
    sessions = db.make_sessions(engine)
    hub = Hub()
    notifier = PgNotifier(engine, hub) if engine.dialect.name == "postgresql" else None
    backends = Backends(settings.backends)

    def changed() -> None:
        hub.changed()
        if notifier is not None:
            notifier.notify()

    services = make_services(sessions, backends, changed, settings.reconcile_every, settings.delete_wait)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.migrate:
            await run_in_threadpool(db.upgrade, settings.db_url)
        await run_in_threadpool(backends.setup, {"db_url": settings.db_url})
        hub.bind(asyncio.get_running_loop())
        if notifier is not None:
            notifier.start()
        services.worker.start()  # resumes what a previous process left creating or deleting
        flusher = asyncio.get_running_loop().create_task(_flush_last_seen(app.state.last_seen))
        yield
        flusher.cancel()
        with contextlib.suppress(Exception):
            await run_in_threadpool(app.state.last_seen.flush)  # what this process saw since the last minute
        services.worker.stop()
        hub.close()  # uvicorn's shutdown (server.py) has done so already; any other server gets it here
        if notifier is not None:
            notifier.stop()
        engine.dispose()

    app = FastAPI(title="sharedfs os-filesystem API", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit)
    # The agents' long-poll in its common case, inside Shed (which counts it and sheds it like any
    # request) and outside the rest (fastlane.py); added after BodyLimit, so it wraps it.
    app.state.fast_lane = Lane()
    app.add_middleware(FastLane, max_wait=settings.max_wait, lane=app.state.fast_lane)
    app.state.loop_lag = LoopLag()  # the server's tick feeds it (server.py)
    app.add_middleware(Shed, limit=settings.max_busy, lag=app.state.loop_lag, max_lag=settings.max_lag)  # fmt: skip
    # What the dependencies in deps.py hand to the routes.
    app.state.services = services
    # Token answers are remembered only until the next change anywhere (PostgreSQL tells every process).
    app.state.tokens = TokenCache(sessions, generation=(lambda: hub.generation) if notifier is not None else None)
    app.state.keystone = _keystone(settings, app.state.tokens) if settings.auth == "keystone" else None
    app.state.vendordata_secret = settings.vendordata_secret
    app.state.vendordata = {"api_url": settings.public_url, "ca_pem": settings.ca_pem}
    identity_backends = {name for name, driver in backends.drivers.items() if driver.access_by == "identity"}
    app.state.view = AgentView(sessions, hub, identity_backends=identity_backends)
    app.state.hub = hub
    app.state.last_seen = LastSeen(sessions)
    app.state.dashboard_sessions = DashboardSessions(sessions)  # in the database: any process serves any session
    _error_handlers(app)
    # The agents' long-poll first: routes are matched in order, and it is most of the requests.
    app.include_router(agents.make_router(settings.max_wait))
    app.include_router(filesystems.router)
    app.include_router(instances.router)
    app.include_router(vendordata.router)
    app.include_router(dashboard.router)
    agent_index(app, settings.agent_wheels)
    _declare_errors(app)
    return app


async def _flush_last_seen(seen: LastSeen) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        try:
            await run_in_threadpool(seen.flush)
        except Exception:  # the database is down: kept, tried again next minute
            log.exception("writing last_seen")


def _keystone(settings: Settings, tokens: TokenCache):
    # Imported here: keystonemiddleware and oslo.policy are the optional `openstack` extra.
    from .keystone import KeystoneAuth

    def local(token: str):
        try:
            return tokens.resolve(token)
        except Unauthorized:
            return None

    return KeystoneAuth(settings.openstack_config, local)


_ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}}}  # fmt: skip
_REASONS = {400: "invalid parameter or body", 401: "missing or unknown X-Auth-Token",
            403: "the token's role or project may not do this", 404: "no such project member, filesystem or instance",
            409: "conflicts with the current state (e.g. a name taken, a filesystem not available)",
            413: "request body over 64 KiB", 503: "the server is shutting down or busy (Retry-After)"}  # fmt: skip


def _declare_errors(app: FastAPI) -> None:
    """The OpenAPI document states the errors the API really sends: 400 for validation (FastAPI
    would declare 422, which is never sent), 401/403 on every token-checked route, 404 where the
    path names something, 409 on the changes, 413 where a body is read, 503 on the long-poll.
    (tests/api/test_schemathesis.py checks every answer against it.)"""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                codes = {400}
                if path.startswith("/v1.1/"):
                    codes |= {401, 403, 404}
                if method in ("put", "delete"):
                    codes.add(409)
                if "requestBody" in operation:
                    codes.add(413)
                responses = operation.setdefault("responses", {})
                if method == "put" and "201" in responses:  # PUT is idempotent: 200 when it is so already
                    responses.setdefault("200", {"description": "exists already as asked (or updated)"})
                if method == "get" and path.endswith("/os-instances/{instance_id}/filesystems"):
                    codes.add(503)
                    responses.setdefault("304", {"description": "the set still has the ETag of If-None-Match"})
                responses.pop("422", None)
                for code in sorted(codes):
                    responses.setdefault(str(code), {"description": _REASONS[code], "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})  # fmt: skip
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = _ERROR_SCHEMA
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        return schema

    app.openapi = openapi


def _error_handlers(app: FastAPI) -> None:
    """Every error is {"error": {"code", "message"}}; an unexpected one is logged and says only that."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(400, _validation_message(request, exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; see the server log")
