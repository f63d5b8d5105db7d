"""The dashboard at /dashboard: sign in with a project token, filesystems, instances with live mount state, forms.

Same services and rules as the JSON API; the caller comes from a server-side session instead of
X-Auth-Token. The session cookie is HttpOnly, SameSite=Strict, Path=/dashboard and Secure behind
TLS; it holds a random session id, never the token. Every form carries the session's CSRF token
and a POST without it is refused (403) before anything is done. Pages are sent with a strict
Content-Security-Policy: no inline script or style, the JS and CSS are files from /dashboard/static.
Mount states are refreshed by polling /dashboard/…/instances.json every POLL_MS (the agents'
long-poll answers per instance, not per filesystem).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import urllib.parse
from importlib import resources
from typing import Dict, List, Optional, Tuple

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sharedfs_agent import wire

from ..auth import Principal
from ..deps import filesystems, instances, tokens
from ..errors import ApiError, BadRequest
from ..schemas import FsEntryIn

__all__ = ["router", "SESSION_COOKIE", "CSP"]

SESSION_COOKIE = "sharedfs_dashboard"
PRE_COOKIE = "sharedfs_dashboard_signin"  # the sign-in form's CSRF token, before there is a session
SESSION_SECONDS = 8 * 3600
POLL_MS = 1000
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
FIELDS = ("name", "size", "scope", "mount_point", "fs_type", "mount_options")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("sharedfs_api.dashboard", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined)  # fmt: skip


class Sessions:
    """Dashboard sessions in this process's memory: id -> (token, project, csrf, expiry). A restart
    signs everyone out; several API processes behind one balancer need sticky sessions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: Dict[str, Tuple[str, str, str, float]] = {}

    def open(self, token: str, project: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: v for k, v in self._by_id.items() if v[3] > now}
            self._by_id[sid] = (token, project, secrets.token_urlsafe(32), now + SESSION_SECONDS)
        return sid

    def get(self, sid: Optional[str]) -> Optional[Tuple[str, str, str, float]]:
        found = self._by_id.get(sid or "")
        return found if found and found[3] > time.monotonic() else None

    def close(self, sid: Optional[str]) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


router = APIRouter(prefix="/dashboard", include_in_schema=False)
_sessions = Sessions()


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
    """The caller of a dashboard request: the session's principal, project and CSRF token."""

    def __init__(self, principal: Principal, project: str, csrf: str) -> None:
        self.principal, self.project, self.csrf = principal, project, csrf


def _signed(request: Request) -> Optional[Signed]:
    session = _sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    token, project, csrf, _ = session
    try:
        principal = tokens(request).resolve(token)  # a revoked or expired token ends the session here
    except ApiError:
        _sessions.close(request.cookies.get(SESSION_COOKIE))
        return None
    return Signed(principal, project, csrf)


def _csrf_ok(expected: str, form: Dict[str, List[str]]) -> bool:
    given = _one(form, "csrf")
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _refused(status: int, message: str, who: Optional[Signed] = None) -> HTMLResponse:
    return _page("error.html", status=status, message=message, who=who, csrf=who.csrf if who else "")


def _tenant_ok(who: Signed, tenant: str) -> Optional[HTMLResponse]:
    try:
        who.principal.require_manager(tenant)
    except ApiError as e:
        return _refused(e.status, e.message, who)
    return None


# -- sign in and out --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(request: Request):
    if request.app.state.keystone is not None:
        return _refused(501, "the dashboard signs in with sharedfs project tokens; this server uses Keystone")
    who = _signed(request)
    if who is not None:
        return _see(f"/dashboard/projects/{urllib.parse.quote(who.project, safe='')}")
    pre = secrets.token_urlsafe(32)
    response = _page("signin.html", csrf=pre, error="", who=None)
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", secure=_secure(request), path="/dashboard")
    return response


@router.post("/signin")
async def signin(request: Request):
    form = await _form(request)
    if not _csrf_ok(request.cookies.get(PRE_COOKIE) or "", form):
        return _refused(403, "the form's CSRF token is missing or wrong: reload the page and try again")
    token, project = _one(form, "token").strip(), _one(form, "project").strip()

    def again(message: str) -> Response:
        return _page("signin.html", status=401, csrf=request.cookies.get(PRE_COOKIE), error=message, who=None)

    try:
        principal = await run_in_threadpool(tokens(request).resolve, token)
    except ApiError:
        return again("that token is not valid here")  # the token itself is never echoed
    if principal.role == "instance":
        return again("an instance token cannot sign in: use a project token")
    project = principal.project if principal.role == "project" else project
    if not project or not wire.IDENT.fullmatch(project):
        return again("an admin token needs the project to manage")
    response = _see(f"/dashboard/projects/{urllib.parse.quote(project, safe='')}")
    response.set_cookie(SESSION_COOKIE, _sessions.open(token, project), httponly=True, samesite="strict",
                        secure=_secure(request), path="/dashboard", max_age=SESSION_SECONDS)  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/dashboard")
    return response


@router.post("/signout")
async def signout(request: Request):
    who = _signed(request)
    if who is not None:
        if not _csrf_ok(who.csrf, await _form(request)):
            return _refused(403, "the form's CSRF token is missing or wrong", who)
        _sessions.close(request.cookies.get(SESSION_COOKIE))
    response = _see("/dashboard")
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


# -- pages -------------------------------------------------------------------------------------------


@router.get("/projects/{tenant}", response_class=HTMLResponse)
async def project_page(request: Request, tenant: str):
    who = _signed(request)
    if who is None:
        return _see("/dashboard")
    refused = _tenant_ok(who, tenant)
    if refused:
        return refused
    return await _project(request, who, tenant)


async def _project(request: Request, who: Signed, tenant: str, errors: Optional[Dict[str, str]] = None,
                   values: Optional[Dict[str, str]] = None, status: int = 200) -> HTMLResponse:  # fmt: skip
    entries = await run_in_threadpool(filesystems(request).list_fs, who.principal, tenant)
    return _page("project.html", status=status, who=who, csrf=who.csrf, tenant=tenant, entries=entries,
                 errors=errors or {}, values=values or {}, admin=who.principal.admin)  # fmt: skip


@router.get("/projects/{tenant}/fs/{name}", response_class=HTMLResponse)
async def filesystem_page(request: Request, tenant: str, name: str):
    who = _signed(request)
    if who is None:
        return _see("/dashboard")
    refused = _tenant_ok(who, tenant)
    if refused:
        return refused
    return await _filesystem(request, who, tenant, name)


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
    who = _signed(request)
    if who is None:
        return _protected(JSONResponse({"error": "signed out"}, status_code=401))
    try:
        who.principal.require_manager(tenant)
        rows = await run_in_threadpool(filesystems(request).fs_instances, who.principal, tenant, name)
        entry = await run_in_threadpool(filesystems(request).get_fs, who.principal, tenant, name)
    except ApiError as e:
        return _protected(JSONResponse({"error": e.message}, status_code=e.status))
    return _protected(JSONResponse({"status": entry.get("status"), "instances": [
        {k: row.get(k) for k in ("id", "connected", "mount_state", "detail", "updated_at")} for row in rows]}))


# -- forms: each checks the session and its CSRF token before anything else -------------------------


async def _posted(request: Request, tenant: str):
    """(who, form, None) for a signed-in, CSRF-valid POST to a tenant it manages, else (…, refusal)."""
    who = _signed(request)
    if who is None:
        return None, {}, _refused(401, "signed out: sign in again")
    form = await _form(request)
    if not _csrf_ok(who.csrf, form):
        return who, form, _refused(403, "the form's CSRF token is missing or wrong: reload the page and try again", who)
    return who, form, _tenant_ok(who, tenant)


def _fs_url(tenant: str, name: str = "") -> str:
    url = f"/dashboard/projects/{urllib.parse.quote(tenant, safe='')}"
    return url + (f"/fs/{urllib.parse.quote(name, safe='')}" if name else "")


@router.post("/projects/{tenant}/create")
async def create(request: Request, tenant: str):
    who, form, refused = await _posted(request, tenant)
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


async def _act(request: Request, tenant: str, name: str, action, then: str) -> Response:
    """Run a form's action; its refusal is shown on the filesystem's page, success redirects to `then`."""
    who, form, refused = await _posted(request, tenant)
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

    return await _act(request, tenant, name, action, _fs_url(tenant))


@router.post("/projects/{tenant}/fs/{name}/connect")
async def connect(request: Request, tenant: str, name: str):
    def action(who, form):
        instance = _one(form, "instance").strip()
        if not wire.IDENT.fullmatch(instance):
            raise BadRequest(f"instance {instance!r} is not an instance id")
        filesystems(request).connect(who.principal, tenant, name, instance)

    return await _act(request, tenant, name, action, _fs_url(tenant, name))


@router.post("/projects/{tenant}/fs/{name}/disconnect")
async def disconnect(request: Request, tenant: str, name: str):
    def action(who, form):
        filesystems(request).disconnect(who.principal, tenant, name, _one(form, "instance").strip())

    return await _act(request, tenant, name, action, _fs_url(tenant, name))


@router.get("/static/{filename}")
def static(filename: str):
    if filename not in STATIC:
        return _protected(Response("not found", status_code=404, media_type="text/plain"))
    data = resources.files("sharedfs_api.dashboard").joinpath("static", filename).read_bytes()
    response = _protected(Response(data, media_type=STATIC[filename]))
    response.headers["Cache-Control"] = "no-cache"
    return response
