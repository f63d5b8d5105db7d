"""The dashboard at /dashboard: sign in (a project token, or Keystone user/password), filesystems, instances with live mount state, forms.

Same services and rules as the JSON API; the caller comes from a server-side session instead of
X-Auth-Token, and each page or form is authorized as the API call it stands for (with Keystone:
that call's policy rule, through keystonemiddleware, as for X-Auth-Token). Sessions are rows in
the database (services/sessions.py), so any API process serves any session. The session cookie is
HttpOnly, SameSite=Strict, Path=/dashboard and Secure behind TLS; it holds a random session id,
never the token. Every form carries the session's CSRF token and a POST without it is refused
(403) before anything is done. Pages are sent with a strict Content-Security-Policy: no inline
script or style, the JS and CSS are files from /dashboard/static. Mount states are refreshed by
polling /dashboard/…/instances.json every POLL_MS (the agents' long-poll answers per instance,
not per filesystem).
"""

from __future__ import annotations

import collections
import hmac
import secrets
import threading
import time
import urllib.parse
from importlib import resources
from typing import Deque, Dict, List, Optional, Tuple

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sharedfs_agent import wire

from ..auth import Principal
from ..deps import filesystems, instances, tokens
from ..errors import ApiError, BadRequest, Unauthorized
from ..schemas import FsEntryIn
from ..services.sessions import SESSION_SECONDS, DashboardSessions, Ended, Opened

__all__ = ["router", "SESSION_COOKIE", "CSP", "SignInLimit"]

SESSION_COOKIE = "sharedfs_dashboard"
PRE_COOKIE = "sharedfs_dashboard_signin"  # the sign-in form's CSRF token, before there is a session
ENDED_COOKIE = "sharedfs_dashboard_ended"  # why the last session ended: one of ENDED's keys, no secret
ENDED = {"expired": "your session has expired: sign in again",
         "refused": "your session has ended (the token is no longer valid): sign in again"}  # fmt: skip
POLL_MS = 1000
DEFAULT_DOMAIN = "Default"  # Keystone's default domain, by name (as Horizon's login form)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
FIELDS = ("name", "size", "scope", "mount_point", "fs_type", "mount_options")

# The API call each page or form stands for: with Keystone, its policy rule decides (keystone.py).
LIST = ("GET", "/v1.1/{tenant}/os-filesystem")
INSTANCES = ("GET", "/v1.1/{tenant}/os-filesystem/{name}/instances")
CREATE = ("PUT", "/v1.1/{tenant}/os-filesystem/{name}")
DELETE = ("DELETE", "/v1.1/{tenant}/os-filesystem/{name}")
CONNECT = ("PUT", "/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}")
DISCONNECT = ("DELETE", "/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("sharedfs_api.dashboard", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined)  # fmt: skip


class SignInLimit:
    """Failed sign-ins per client address and user: after `limit` within `window` seconds, that pair
    is refused until the oldest failure leaves the window. Per process (a cheap brake on password
    guessing through one API process; Keystone's own lockout rules still apply behind it)."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._failures: Dict[Tuple[str, str], Deque[float]] = {}

    def _recent(self, key: Tuple[str, str]) -> Deque[float]:
        now = time.monotonic()
        if len(self._failures) > 10_000:
            self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - self.window}
        seen = self._failures.setdefault(key, collections.deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def blocked(self, key: Tuple[str, str]) -> bool:
        with self._lock:
            return len(self._recent(key)) >= self.limit

    def failed(self, key: Tuple[str, str]) -> None:
        with self._lock:
            self._recent(key).append(time.monotonic())

    def succeeded(self, key: Tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


router = APIRouter(prefix="/dashboard", include_in_schema=False)
_limit = SignInLimit()


def _sessions(request: Request) -> DashboardSessions:
    return request.app.state.dashboard_sessions


def _keystone_mode(request: Request) -> bool:
    return request.app.state.keystone is not None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _page(template: str, status: int = 200, **context) -> HTMLResponse:
    html = _templates.get_template(template).render(poll_ms=POLL_MS, **context)
    return _protected(HTMLResponse(html, status_code=status))


def _protected(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _see(url: str) -> Response:
    return _protected(RedirectResponse(url, status_code=303))


async def _form(request: Request) -> Dict[str, List[str]]:
    body = await request.body()
    return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _one(form: Dict[str, List[str]], key: str) -> str:
    return (form.get(key) or [""])[0]


class Signed:
    """The caller of a dashboard request: its session, and its principal for the page's project."""

    def __init__(self, sid: str, session: Opened, principal: Optional[Principal] = None) -> None:
        self.sid, self.token, self.csrf = sid, session.token, session.csrf
        self.project, self.user = session.project, session.user
        self.principal = principal
        self.keystone = False


def _principal(request: Request, token: str, tenant: str, call: Tuple[str, str]) -> Principal:
    """The token's principal for this call on tenant: the API's own path (keystone.py's policy
    rules with Keystone, the built-in role matrix otherwise). Unauthorized: the token is no longer good."""
    keystone = request.app.state.keystone
    if keystone is not None:
        return keystone.principal(token, tenant, *call)
    principal = tokens(request).resolve(token)
    principal.require_manager(tenant)
    return principal


def _ended(request: Request, reason: str, status: int = 303, json: bool = False) -> Response:
    """The session is over: its cookie is dropped and the sign-in page says why."""
    if json:
        response = _protected(JSONResponse({"error": ENDED[reason], "signed_out": True}, status_code=401))
    else:
        response = _see("/dashboard")
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    response.set_cookie(ENDED_COOKIE, reason, httponly=True, samesite="strict", secure=_secure(request),
                        path="/dashboard", max_age=600)  # fmt: skip
    return response


async def _who(request: Request, tenant: Optional[str], call: Tuple[str, str],
               json: bool = False) -> Tuple[Optional[Signed], Optional[Response]]:  # fmt: skip
    """(who, None) for a live session allowed to make `call` on tenant, else (who or None, the answer):
    to the sign-in page without a session or when it ended, a refusal page when not allowed."""
    sid = request.cookies.get(SESSION_COOKIE)
    session = await run_in_threadpool(_sessions(request).get, sid)
    if session is None:
        if json:
            return None, _protected(JSONResponse({"error": "signed out", "signed_out": True}, status_code=401))
        return None, _see("/dashboard")
    if isinstance(session, Ended):
        return None, _ended(request, "expired", json=json)
    who = Signed(sid, session)
    who.keystone = _keystone_mode(request)
    if tenant is None:
        return who, None
    return await _authorize(request, who, tenant, call, json)


async def _authorize(request: Request, who: Signed, tenant: str, call: Tuple[str, str],
                     json: bool = False) -> Tuple[Optional[Signed], Optional[Response]]:  # fmt: skip
    try:
        who.principal = await run_in_threadpool(_principal, request, who.token, tenant, call)
    except Unauthorized:  # revoked or expired (a Keystone token, a sharedfs token): the session ends here
        await run_in_threadpool(_sessions(request).close, who.sid)
        return None, _ended(request, "refused", json=json)
    except ApiError as e:
        if json:
            return who, _protected(JSONResponse({"error": e.message}, status_code=e.status))
        return who, _refused(e.status, e.message, who)
    return who, None


def _csrf_ok(expected: str, form: Dict[str, List[str]]) -> bool:
    given = _one(form, "csrf")
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _refused(status: int, message: str, who: Optional[Signed] = None) -> HTMLResponse:
    return _page("error.html", status=status, message=message, who=who, csrf=who.csrf if who else "")


def _open(request: Request, response: Response, token: str, project: str, user: str = "", expires_at=None) -> Response:
    sid = _sessions(request).open(token, project, user, expires_at)
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=_secure(request),
                        path="/dashboard", max_age=SESSION_SECONDS)  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/dashboard")
    response.delete_cookie(ENDED_COOKIE, path="/dashboard")
    return response


def _project_url(project: str) -> str:
    return f"/dashboard/projects/{urllib.parse.quote(project, safe='')}"


# -- sign in and out --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def home(request: Request):
    session = await run_in_threadpool(_sessions(request).get, request.cookies.get(SESSION_COOKIE))
    if isinstance(session, Opened):
        return _see(_project_url(session.project))
    reason = "expired" if isinstance(session, Ended) else request.cookies.get(ENDED_COOKIE) or ""
    pre = secrets.token_urlsafe(32)
    response = _signin_page(request, pre, notice=ENDED.get(reason, ""))
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", secure=_secure(request), path="/dashboard")
    response.delete_cookie(ENDED_COOKIE, path="/dashboard")
    if request.cookies.get(SESSION_COOKIE):
        response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


def _signin_page(request: Request, csrf: str, status: int = 200, errors: Optional[Dict[str, str]] = None,
                 values: Optional[Dict[str, str]] = None, notice: str = "") -> HTMLResponse:  # fmt: skip
    template = "signin_keystone.html" if _keystone_mode(request) else "signin.html"
    values = {"domain": DEFAULT_DOMAIN, **(values or {})}
    errors = errors or {}
    return _page(template, status=status, csrf=csrf, errors=errors, error=errors.get("token", ""), values=values,
                 notice=notice, who=None)  # fmt: skip


@router.post("/signin")
async def signin(request: Request):
    form = await _form(request)
    pre = request.cookies.get(PRE_COOKIE) or ""
    if not _csrf_ok(pre, form):
        return _refused(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    if _keystone_mode(request):
        return await _signin_keystone(request, form, pre)
    token, project = _one(form, "token").strip(), _one(form, "project").strip()
    key = (request.client.host if request.client else "", "")

    def again(message: str, status: int = 401) -> Response:
        return _signin_page(request, pre, status, {"token": message}, {"project": project})

    if _limit.blocked(key):
        return again("too many failed sign-ins from here: wait a few minutes", 429)
    try:
        principal = await run_in_threadpool(tokens(request).resolve, token)
    except ApiError:
        _limit.failed(key)
        return again("that token is not valid here")  # the token itself is never echoed
    if principal.role == "instance":
        return again("an instance token cannot sign in: use a project token")
    project = principal.project if principal.role == "project" else project
    if not project or not wire.IDENT.fullmatch(project):
        return again("an admin token needs the project to manage")
    _limit.succeeded(key)
    return await run_in_threadpool(_open, request, _see(_project_url(project)), token, project)


async def _signin_keystone(request: Request, form: Dict[str, List[str]], pre: str) -> Response:
    """User name, password, project and domain -> a project-scoped Keystone token, kept in the session row."""
    values = {key: _one(form, key).strip() for key in ("user", "project", "domain")}
    values["domain"] = values["domain"] or DEFAULT_DOMAIN
    password = _one(form, "password")  # as typed: a password may start or end with blanks
    errors = {key: f"enter the {key}" for key in ("user", "project") if not values[key]}
    if not password:
        errors["password"] = "enter the password"
    for key in ("user", "project", "domain"):
        if len(values[key]) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in values[key]):
            errors[key] = f"the {key} name is not valid"
    if errors:
        return _signin_page(request, pre, 400, errors, values)
    key = (request.client.host if request.client else "", values["user"].lower())
    if _limit.blocked(key):
        return _signin_page(request, pre, 429, {"password": "too many failed sign-ins for this user from here: "
                                                            "wait a few minutes"}, values)  # fmt: skip
    try:
        signed_in = await run_in_threadpool(request.app.state.keystone.sign_in, values["user"], password,
                                            values["project"], values["domain"])  # fmt: skip
    except Unauthorized as e:
        _limit.failed(key)
        return _signin_page(request, pre, 401, {"password": e.message}, values)
    except ApiError as e:
        return _signin_page(request, pre, e.status, {"password": e.message}, values)
    _limit.succeeded(key)
    response = _see(_project_url(signed_in.project_id))
    return await run_in_threadpool(_open, request, response, signed_in.token, signed_in.project_id,
                                   f"{signed_in.user} ({values['project']})", signed_in.expires_at)  # fmt: skip


@router.post("/signout")
async def signout(request: Request):
    who, _ = await _who(request, None, LIST)
    if who is not None:
        if not _csrf_ok(who.csrf, await _form(request)):
            return _refused(403, "the form's CSRF token is missing or wrong", who)
        await run_in_threadpool(_sessions(request).close, who.sid)
    response = _see("/dashboard")
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


# -- pages -------------------------------------------------------------------------------------------


@router.get("/projects/{tenant}", response_class=HTMLResponse)
async def project_page(request: Request, tenant: str):
    who, answer = await _who(request, tenant, LIST)
    return answer or await _project(request, who, tenant)


async def _project(request: Request, who: Signed, tenant: str, errors: Optional[Dict[str, str]] = None,
                   values: Optional[Dict[str, str]] = None, status: int = 200) -> HTMLResponse:  # fmt: skip
    try:
        entries = await run_in_threadpool(filesystems(request).list_fs, who.principal, tenant)
    except ApiError as e:
        return _refused(e.status, e.message, who)
    return _page("project.html", status=status, who=who, csrf=who.csrf, tenant=tenant, entries=entries,
                 errors=errors or {}, values=values or {}, admin=who.principal.admin)  # fmt: skip


@router.get("/projects/{tenant}/fs/{name}", response_class=HTMLResponse)
async def filesystem_page(request: Request, tenant: str, name: str):
    who, answer = await _who(request, tenant, INSTANCES)
    return answer or await _filesystem(request, who, tenant, name)


async def _filesystem(request: Request, who: Signed, tenant: str, name: str, error: str = "",
                      status: int = 200) -> HTMLResponse:  # fmt: skip
    service = filesystems(request)
    try:
        entry = await run_in_threadpool(service.get_fs, who.principal, tenant, name)
        rows = await run_in_threadpool(service.fs_instances, who.principal, tenant, name)
        known = await run_in_threadpool(instances(request).list_instances, who.principal, tenant)
    except ApiError as e:
        return _refused(e.status, e.message, who)
    return _page("filesystem.html", status=status, who=who, csrf=who.csrf, tenant=tenant, fs=entry, rows=rows,
                 known=[i["id"] for i in known], error=error)  # fmt: skip


@router.get("/projects/{tenant}/fs/{name}/instances.json")
async def instances_json(request: Request, tenant: str, name: str):
    who, answer = await _who(request, tenant, INSTANCES, json=True)
    if answer:
        return answer
    try:
        rows = await run_in_threadpool(filesystems(request).fs_instances, who.principal, tenant, name)
        entry = await run_in_threadpool(filesystems(request).get_fs, who.principal, tenant, name)
    except ApiError as e:
        return _protected(JSONResponse({"error": e.message}, status_code=e.status))
    return _protected(JSONResponse({"status": entry.get("status"), "instances": [
        {k: row.get(k) for k in ("id", "connected", "mount_state", "detail", "updated_at")} for row in rows]}))


# -- forms: each checks the session and its CSRF token before anything else -------------------------


async def _posted(request: Request, tenant: str, call: Tuple[str, str]):
    """(who, form, None) for a signed-in, CSRF-valid POST its token may make on tenant, else (…, the answer)."""
    who, answer = await _who(request, None, call)
    if answer:
        return who, {}, answer
    form = await _form(request)
    if not _csrf_ok(who.csrf, form):
        return who, form, _refused(403, "the form's CSRF token is missing or wrong: reload the page and try again", who)
    who, answer = await _authorize(request, who, tenant, call)
    return who, form, answer


def _fs_url(tenant: str, name: str = "") -> str:
    url = _project_url(tenant)
    return url + (f"/fs/{urllib.parse.quote(name, safe='')}" if name else "")


@router.post("/projects/{tenant}/create")
async def create(request: Request, tenant: str):
    who, form, refused = await _posted(request, tenant, CREATE)
    if refused:
        return refused
    values = {key: _one(form, key).strip() for key in FIELDS}
    errors: Dict[str, str] = {}
    name = values["name"]
    if not wire.FS_NAME.fullmatch(name):
        errors["name"] = "a name of letters, digits, '.', '_' or '-' (it starts with a letter or digit)"
    fields = {"size": values["size"], "scope": values["scope"] or "instance"}
    for key in ("mount_point", "fs_type"):
        if values[key]:
            fields[key] = values[key]
    if values["mount_options"]:
        fields["mount_options"] = values["mount_options"]
    try:
        entry = FsEntryIn(**fields)
    except ValidationError as e:
        for err in e.errors():
            field = str(err["loc"][0]) if err.get("loc") else "name"
            errors.setdefault(field if field in FIELDS else "name", err.get("msg", "invalid").removeprefix("Value error, "))
        entry = None
    if entry is not None and not errors:
        try:
            await run_in_threadpool(filesystems(request).put_fs, who.principal, tenant, name, entry)
        except ApiError as e:
            errors[_field_of(e.message)] = e.message
    if errors:
        return await _project(request, who, tenant, errors, values, status=400)
    return _see(_fs_url(tenant, name))


def _field_of(message: str) -> str:
    """The form field an API message is about (`mount_point …`, `fs_type …`), else the name's."""
    for field in ("mount_point", "mount_options", "fs_type", "size", "scope"):
        if field in message:
            return field
    return "name"


async def _act(request: Request, tenant: str, name: str, call: Tuple[str, str], action, then: str) -> Response:
    """Run a form's action; its refusal is shown on the filesystem's page, success redirects to `then`."""
    who, form, refused = await _posted(request, tenant, call)
    if refused:
        return refused
    try:
        await run_in_threadpool(action, who, form)
    except ApiError as e:
        return await _filesystem(request, who, tenant, name, error=e.message, status=e.status)
    return _see(then)


@router.post("/projects/{tenant}/fs/{name}/delete")
async def delete(request: Request, tenant: str, name: str):
    def action(who, form):
        filesystems(request).delete_fs(who.principal, tenant, name)

    return await _act(request, tenant, name, DELETE, action, _fs_url(tenant))


@router.post("/projects/{tenant}/fs/{name}/connect")
async def connect(request: Request, tenant: str, name: str):
    def action(who, form):
        instance = _one(form, "instance").strip()
        if not wire.IDENT.fullmatch(instance):
            raise BadRequest(f"instance {instance!r} is not an instance id")
        filesystems(request).connect(who.principal, tenant, name, instance)

    return await _act(request, tenant, name, CONNECT, action, _fs_url(tenant, name))


@router.post("/projects/{tenant}/fs/{name}/disconnect")
async def disconnect(request: Request, tenant: str, name: str):
    def action(who, form):
        filesystems(request).disconnect(who.principal, tenant, name, _one(form, "instance").strip())

    return await _act(request, tenant, name, DISCONNECT, action, _fs_url(tenant, name))


@router.get("/static/{filename}")
def static(filename: str):
    if filename not in STATIC:
        return _protected(Response("not found", status_code=404, media_type="text/plain"))
    data = resources.files("sharedfs_api.dashboard").joinpath("static", filename).read_bytes()
    response = _protected(Response(data, media_type=STATIC[filename]))
    response.headers["Cache-Control"] = "no-cache"
    return response
