"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against a
real API (glusterfs driver), a real glusterd and a real agent: sign in, create, connect, see `mounted` appear
without reloading, disconnect, delete; a cross-project URL and a form without its CSRF token refused.
Each page's screenshot is written to $SHAREDFS_SCREENSHOTS/dashboard-*.png when set (`SHAREDFS_SCREENSHOTS=docs`
refreshes the README's), else next to the test's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.stack import LocalStack
from tests.support import wait_for
from tests.support.browser import shot, text_of

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def stack(glusterd, workdir):
    s = LocalStack(workdir / "dashboard", glusterd, quota=False,
                   agent_settings="mount_timeout = 20\nprobe_timeout = 3\n").start()  # fmt: skip
    yield s
    s.stop()


def test_dashboard_end_to_end(stack, browser):
    from selenium.webdriver.common.by import By

    assert wait_for(lambda: stack.call("GET", f"/v1.1/{stack.project}/os-instances").json()["instances"], timeout=30)
    token = stack.api.token("project", stack.project)
    url = stack.api.url + "/dashboard"
    b = browser

    b.get(url)
    shot(b, "signin")
    b.find_element(By.ID, "token").send_keys(token)
    b.find_element(By.ID, "signin").click()
    assert wait_for(lambda: b.current_url.endswith(f"/dashboard/projects/{stack.project}"), timeout=10), b.current_url
    assert token not in b.current_url and token not in b.page_source

    # A refused mount point: the API's message next to its field, what was typed kept.
    b.find_element(By.ID, "f-name").send_keys("web")
    b.find_element(By.ID, "f-size").send_keys("1Gb")
    b.find_element(By.ID, "f-mount_point").send_keys("/etc/web")
    b.find_element(By.ID, "create").click()
    assert wait_for(lambda: "/etc" in text_of(b, "#error-mount_point"), timeout=10), b.page_source
    shot(b, "create-error")
    field = b.find_element(By.ID, "f-mount_point")
    field.clear()
    field.send_keys(stack.mount_point("web"))
    b.find_element(By.ID, "create").click()
    assert wait_for(lambda: b.current_url.endswith("/fs/web"), timeout=60), b.page_source

    # Connect: the state turns `mounted` on this very page, without a reload (the marker survives).
    b.find_element(By.ID, "f-instance").send_keys(stack.instance)
    b.find_element(By.ID, "connect").click()
    cell = f'tr[data-instance="{stack.instance}"] .mount-state'
    row = f'tr[data-instance="{stack.instance}"] .connected'
    assert wait_for(lambda: text_of(b, row) == "yes", timeout=10), b.page_source  # the page after the redirect
    b.execute_script("document.body.dataset.noReload = 'yes'")  # gone if anything reloads the page
    assert wait_for(lambda: text_of(b, cell) == "mounted", timeout=60), (b.page_source, stack.log_path.read_text())
    assert b.execute_script("return document.body.dataset.noReload") == "yes"
    assert stack.mounted("web")  # the agent really mounted it
    shot(b, "filesystem")

    b.get(f"{url}/projects/{stack.project}")
    assert wait_for(lambda: "web" in text_of(b, "#filesystems"), timeout=10), b.page_source
    shot(b, "filesystems")

    # Disconnect: `unmounted` appears live, and the mount is gone.
    b.get(f"{url}/projects/{stack.project}/fs/web")
    b.find_element(By.CSS_SELECTOR, "button.disconnect").click()
    assert wait_for(lambda: text_of(b, cell) == "unmounted", timeout=60), b.page_source
    assert not stack.mounted("web")

    # A cross-project URL is refused, as is a form posted without its CSRF token.
    b.get(f"{url}/projects/someone-else")
    assert wait_for(lambda: "someone-else" in text_of(b, "#refused"), timeout=10), b.page_source
    shot(b, "refused")
    b.get(f"{url}/projects/{stack.project}/fs/web")
    b.execute_script("document.querySelector('#delete-form input[name=csrf]').remove()")
    b.execute_script("document.getElementById('delete-form').submit()")
    assert wait_for(lambda: "CSRF" in text_of(b, "#refused"), timeout=10), b.page_source
    assert stack.call("GET", f"/v1.1/{stack.project}/os-filesystem/web").status_code == 200  # nothing done

    # Delete (the page asks first).
    b.get(f"{url}/projects/{stack.project}/fs/web")
    b.find_element(By.ID, "delete").click()
    b.switch_to.alert.accept()
    assert wait_for(lambda: b.current_url.endswith(f"/dashboard/projects/{stack.project}"), timeout=60)
    # The worker deletes it outside the request (202 "deleting"): gone once it is done.
    assert wait_for(lambda: stack.call("GET", f"/v1.1/{stack.project}/os-filesystem/web").status_code == 404,
                    timeout=60)  # fmt: skip
    stack.api.log.flush()
    assert token not in Path(stack.api.log.name).read_text()  # the token never reaches the server's log
