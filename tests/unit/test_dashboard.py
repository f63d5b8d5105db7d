"""The dashboard's rules without a browser: sign-in, cookie flags, CSP, CSRF, cross-project refusal, field messages."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from sharedfs_api import db
from sharedfs_api.app import Settings, create_app
from sharedfs_api.auth import store_token
from sharedfs_api.routers import dashboard as dashboard_mod
from sharedfs_api.routers.dashboard import CSP, SESSION_COOKIE
from sharedfs_api.services import sessions as sessions_mod


@pytest.fixture
def site(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(db_url=url))
    with TestClient(app, base_url="https://testserver") as client:  # https: the cookie must be Secure
        sessions = db.make_sessions(db.make_engine(url))
        client.tokens = {"p1": store_token(sessions, "project", "p1", None),
                         "admin": store_token(sessions, "admin", None, None),
                         "inst": store_token(sessions, "instance", "p1", "i1")}  # fmt: skip
        yield client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, token: str, project: str = ""):
    page = client.get("/dashboard")
    return client.post("/dashboard/signin", data={"csrf": csrf_of(page.text), "token": token, "project": project},
                       follow_redirects=False)  # fmt: skip


def test_signin_sets_a_strict_session_cookie_without_the_token(site):
    page = site.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline for the CSP to block
    done = sign_in(site, site.tokens["p1"])
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/projects/p1"
    cookie = [c for c in done.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")][0]
    assert all(flag in cookie.lower() for flag in ("httponly", "samesite=strict", "secure", "path=/dashboard"))
    assert site.tokens["p1"] not in cookie and site.tokens["p1"] not in done.headers["location"]
    listing = site.get("/dashboard/projects/p1")
    assert listing.status_code == 200 and 'id="filesystems"' in listing.text
    assert site.tokens["p1"] not in listing.text


def test_bad_tokens_do_not_sign_in(site):
    assert sign_in(site, "nope").status_code == 401
    assert sign_in(site, site.tokens["inst"]).status_code == 401  # an instance token manages nothing
    assert sign_in(site, site.tokens["admin"]).status_code == 401  # admin: which project?
    assert sign_in(site, site.tokens["admin"], "p2").headers["location"] == "/dashboard/projects/p2"
    # the sign-in form itself needs its CSRF token
    assert site.post("/dashboard/signin", data={"token": site.tokens["p1"]}).status_code == 403


def test_cross_project_url_and_missing_csrf_are_refused(site):
    sign_in(site, site.tokens["p1"])
    other = site.get("/dashboard/projects/p2")
    assert other.status_code == 403 and "not &#39;p2&#39;" in other.text  # escaped: names are never raw HTML
    assert site.get("/dashboard/projects/p2/fs/x/instances.json").status_code == 403
    page = site.get("/dashboard/projects/p1")
    no_csrf = site.post("/dashboard/projects/p1/create", data={"name": "a", "size": "1Gb"})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    wrong = site.post("/dashboard/projects/p1/create", data={"csrf": "x" + csrf_of(page.text), "name": "a", "size": "1Gb"})
    assert wrong.status_code == 403
    cross = site.post("/dashboard/projects/p2/create", data={"csrf": csrf_of(page.text), "name": "a", "size": "1Gb"})
    assert cross.status_code == 403


def test_validation_messages_stand_next_to_their_field(site):
    sign_in(site, site.tokens["admin"], "p1")
    csrf = csrf_of(site.get("/dashboard/projects/p1").text)
    bad = site.post("/dashboard/projects/p1/create", data={"csrf": csrf, "name": "a", "size": "huge",
                                                          "mount_point": "/etc/x"})  # fmt: skip
    assert bad.status_code == 400
    size = re.search(r'id="error-size">([^<]+)<', bad.text).group(1)
    mount = re.search(r'id="error-mount_point">([^<]+)<', bad.text).group(1)
    assert "huge" in size and "/etc" in mount
    assert 'value="huge"' in bad.text  # what was typed is kept
    # the API's own refusal (the static driver needs an export), next to the field it names
    refused = site.post("/dashboard/projects/p1/create", data={"csrf": csrf, "name": "a", "size": "1Gb"})
    assert refused.status_code == 400 and re.search(r'id="error-\w+">[^<]*export', refused.text)


def test_signout_ends_the_session(site):
    sign_in(site, site.tokens["p1"])
    csrf = csrf_of(site.get("/dashboard/projects/p1").text)
    assert site.post("/dashboard/signout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert site.get("/dashboard/projects/p1", follow_redirects=False).headers["location"] == "/dashboard"


def test_static_files_only_by_name(site):
    js = site.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert site.get("/dashboard/static/..%2Fapp.py").status_code == 404


# -- sessions in the database: any process, sealed tokens, the end of a session said -----------------


def test_a_session_lives_in_the_database_any_app_on_it_serves_it(site, tmp_path):
    sign_in(site, site.tokens["p1"])
    sid = site.cookies.get(SESSION_COOKIE)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    with TestClient(create_app(Settings(db_url=url)), base_url="https://testserver") as other:
        other.cookies.set(SESSION_COOKIE, sid, domain="testserver.local", path="/dashboard")
        page = other.get("/dashboard/projects/p1")
        assert page.status_code == 200 and 'id="filesystems"' in page.text
        assert csrf_of(page.text) == csrf_of(site.get("/dashboard/projects/p1").text)  # one CSRF token, derived
    rows = sqlite3.connect(tmp_path / "api.db").execute("SELECT * FROM dashboard_sessions").fetchall()
    assert len(rows) == 1
    dump = repr(rows)
    assert sid not in dump and site.tokens["p1"] not in dump  # neither the cookie nor the token is in the table
    assert sessions_mod.row_id(sid) == rows[0][0]


def test_a_revoked_token_or_an_expired_session_signs_out_with_a_message(site, tmp_path):
    sign_in(site, site.tokens["p1"])
    database = sqlite3.connect(tmp_path / "api.db")
    with database:
        database.execute("UPDATE dashboard_sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    gone = site.get("/dashboard/projects/p1", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/dashboard"
    page = site.get("/dashboard")
    assert "your session has expired" in re.search(r'id="signin-notice">([^<]+)<', page.text).group(1)
    assert database.execute("SELECT count(*) FROM dashboard_sessions").fetchone() == (0,)
    sign_in(site, site.tokens["p1"])  # straight to the sign-in page when the session ran out: it says so too
    with database:
        database.execute("UPDATE dashboard_sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    assert "your session has expired" in site.get("/dashboard").text

    sign_in(site, site.tokens["p1"])
    with database:
        database.execute("DELETE FROM tokens WHERE role = 'project'")  # what `token revoke` does
    polled = site.get("/dashboard/projects/p1/fs/x/instances.json")
    assert polled.status_code == 401 and polled.json()["signed_out"] is True
    assert "no longer valid" in site.get("/dashboard").text


def test_failed_sign_ins_are_limited_per_client(site, monkeypatch):
    monkeypatch.setattr(dashboard_mod, "_limit", dashboard_mod.SignInLimit(limit=3, window=60))
    for _ in range(3):
        assert sign_in(site, "nope").status_code == 401
    limited = sign_in(site, site.tokens["p1"])  # even the right token waits: the brake is per client
    assert limited.status_code == 429 and "too many failed sign-ins" in limited.text


def test_sessions_store_round_trip_and_tampering(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    store = sessions_mod.DashboardSessions(db.make_sessions(db.make_engine(url)))
    sid = store.open("secret-token", "p1", "alice (alpha)")
    opened = store.get(sid)
    assert (opened.token, opened.project, opened.user) == ("secret-token", "p1", "alice (alpha)")
    assert store.get(sid + "x") is None and store.get("") is None
    short = store.open("t2", "p1", expires_at=db.now() + dt.timedelta(seconds=-1))  # a Keystone token's end is the session's
    assert isinstance(store.get(short), sessions_mod.Ended) and store.get(short) is None
    store.close(sid)
    assert store.get(sid) is None
