"""The dashboard with --auth keystone in a real headless Chromium against a real Keystone and two API processes on
one database: the user/password sign-in page, a wrong password shown next to its field, the project's filesystems,
the session served by the second process too, a cross-project URL refused, and the session ending with a message
when Keystone revokes its token or the session runs out. The sign-in page's screenshot goes to
$SHAREDFS_SCREENSHOTS/dashboard-keystone-signin.png (`SHAREDFS_SCREENSHOTS=docs` refreshes the README's)."""

from __future__ import annotations

import sqlite3

import pytest

from devtools.apiserver import ApiServer
from devtools.keystone import PASSWORD
from sharedfs_api import db
from sharedfs_api.routers.dashboard import SESSION_COOKIE
from sharedfs_api.services.sessions import DashboardSessions
from tests.support import wait_for
from tests.support.browser import shot, text_of

GL = {"export": "gl1:/vol", "fs_type": "glusterfs", "size": "1Gb"}


@pytest.fixture(scope="module")
def servers(keystone, tmp_path_factory):
    """Two sharedfs-api processes, --auth keystone, one SQLite database; keystonemiddleware caches no
    validation, so a revoked token is refused at once."""
    base = tmp_path_factory.mktemp("dashboard-keystone")
    config = keystone.write_config(base / "openstack.conf", extra="token_cache_time = -1\n")
    url = f"sqlite:///{base / 'api.db'}"
    args = ["--auth", "keystone", "--openstack-config", str(config)]
    first = ApiServer(base / "a", db_url=url, extra_args=args).start()
    second = ApiServer(base / "b", db_url=url, extra_args=args).start()
    admin = keystone.token("admin", "admin", password="admin-secret")
    for project, name in (("alpha", "ks-alpha"), ("beta", "ks-beta")):
        path = f"/v1.1/{keystone.project(project)}/os-filesystem/{name}"
        made = first.call("PUT", path, admin, json={"fs_entry": GL})
        assert made.status_code == 201, made.text
    yield first, second, base / "api.db"
    second.stop()
    first.stop()


def fill(b, **fields) -> None:
    from selenium.webdriver.common.by import By

    for key, value in fields.items():
        element = b.find_element(By.ID, key)
        element.clear()
        element.send_keys(value)
    b.find_element(By.ID, "signin").click()


def sign_in(b, server, password=PASSWORD, user="alpha-member") -> None:
    b.get(server.url + "/dashboard")
    fill(b, user=user, password=password, project="alpha")


def test_keystone_sign_in_sessions_across_processes_and_their_end(servers, keystone, browser):
    from selenium.webdriver.common.by import By

    first, second, database = servers
    alpha, beta = keystone.project("alpha"), keystone.project("beta")
    b = browser

    b.get(first.url + "/dashboard")
    assert b.find_element(By.ID, "domain").get_attribute("value") == "Default"
    shot(b, "keystone-signin")

    # A wrong password: one message next to the password field (not saying which part was wrong), the rest kept.
    sign_in(b, first, password="not-the-password")
    assert wait_for(lambda: text_of(b, "#error-password"), timeout=15), b.page_source
    assert text_of(b, "#error-password") == "the user name, password, project or domain is wrong"
    assert b.find_element(By.ID, "user").get_attribute("value") == "alpha-member"
    assert b.find_element(By.ID, "password").get_attribute("value") == ""
    assert "not-the-password" not in b.page_source
    shot(b, "keystone-wrong-password")

    sign_in(b, first)
    assert wait_for(lambda: b.current_url.endswith(f"/dashboard/projects/{alpha}"), timeout=15), b.page_source
    assert wait_for(lambda: "ks-alpha" in text_of(b, "#filesystems"), timeout=10), b.page_source
    assert "ks-beta" not in text_of(b, "#filesystems")
    assert "alpha-member" in text_of(b, "header")
    sid = b.get_cookie(SESSION_COOKIE)["value"]
    token = DashboardSessions(db.make_sessions(db.make_engine(f"sqlite:///{database}"))).get(sid).token
    assert keystone.token("alpha-member", "alpha") != token  # a token of its own, issued at sign-in
    assert token not in b.page_source and token not in sid  # kept on the server only

    # The second process knows the session (one database), and refuses another project's URL.
    b.get(f"{second.url}/dashboard/projects/{alpha}")
    assert wait_for(lambda: "ks-alpha" in text_of(b, "#filesystems"), timeout=10), b.page_source
    b.get(f"{second.url}/dashboard/projects/{beta}")
    assert wait_for(lambda: beta in text_of(b, "#refused"), timeout=10), b.page_source
    assert "ks-beta" not in b.page_source

    # Keystone revokes the token: the next page signs out and says why.
    keystone.revoke(token)
    b.get(f"{first.url}/dashboard/projects/{alpha}")
    assert wait_for(lambda: "no longer valid" in text_of(b, "#signin-notice"), timeout=10), b.page_source
    assert b.get_cookie(SESSION_COOKIE) is None

    # The session's end (at the latest the Keystone token's expiry): signed out with a message, on either process.
    sign_in(b, second)
    assert wait_for(lambda: b.current_url.endswith(f"/dashboard/projects/{alpha}"), timeout=15), b.page_source
    with sqlite3.connect(database) as rows:
        rows.execute("UPDATE dashboard_sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    b.get(f"{first.url}/dashboard/projects/{alpha}")
    assert wait_for(lambda: "expired" in text_of(b, "#signin-notice"), timeout=10), b.page_source
    # A reader sees the project but its token's policy refuses a change, as the JSON call would.
    sign_in(b, first, user="alpha-reader")
    assert wait_for(lambda: "ks-alpha" in text_of(b, "#filesystems"), timeout=15), b.page_source
    b.find_element(By.ID, "f-name").send_keys("by-reader")
    b.find_element(By.ID, "f-size").send_keys("1Gb")
    b.find_element(By.ID, "create").click()
    assert wait_for(lambda: "sharedfs:filesystem:create" in text_of(b, "#refused"), timeout=10), b.page_source
    for server in (first, second):
        server.log.flush()
        assert token not in (server.base / f"server-{server.port}.log").read_text()  # never in a log
