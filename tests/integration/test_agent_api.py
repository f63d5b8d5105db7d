"""The agent daemon against a real sharedfs-api (glusterfs driver) and a real glusterd, in a private mount namespace."""

from __future__ import annotations

import http.server
import signal
import threading
import time

import pytest

from devtools.stack import LocalStack

from .conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.gluster]


@pytest.fixture(scope="module")
def stack(glusterd, workdir):
    s = LocalStack(workdir / "agent-api", glusterd, quota=False,
                   agent_settings="mount_timeout = 20\nprobe_timeout = 3\n").start()  # fmt: skip
    yield s
    s.stop()


def test_attach_report_detach(stack):
    stack.create("projhome", scope="project")
    assert wait_for(lambda: stack.mounted("projhome"), timeout=20), stack.log_path.read_text()
    assert wait_for(lambda: stack.reported("projhome") == "mounted", timeout=10)

    stack.create("scratch")
    assert not stack.mounted("scratch")
    assert stack.call("PUT", "/v1.1/p1/os-filesystem/scratch/instances/vm1").status_code == 201
    assert wait_for(lambda: stack.mounted("scratch"), timeout=20)
    assert wait_for(lambda: stack.reported("scratch") == "mounted", timeout=10)
    # the agent registered this instance's addresses itself
    addresses = stack.call("GET", "/v1.1/p1/os-instances").json()["instances"][0]["addresses"]
    assert addresses and all(not a.startswith("127.") for a in addresses)

    assert stack.call("DELETE", "/v1.1/p1/os-filesystem/scratch/instances/vm1").status_code == 202
    assert wait_for(lambda: not stack.mounted("scratch"), timeout=20)
    assert wait_for(lambda: stack.reported("scratch") == "unmounted", timeout=10)
    assert stack.call("DELETE", "/v1.1/p1/os-filesystem/scratch").status_code == 202


def test_api_down_for_a_minute_unmounts_nothing(stack):
    stack.create("keep", scope="project")
    assert wait_for(lambda: stack.mounted("keep"), timeout=20)
    stack.api.stop(signal.SIGKILL)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert stack.mounted("keep") and stack.mounted("projhome")
            time.sleep(2)
        assert stack.agent.poll() is None
    finally:
        stack.api.start()
    # Converges when it returns: a deletion made now reaches the instance.
    assert stack.call("DELETE", "/v1.1/p1/os-filesystem/keep").status_code == 202
    # The next try comes within the backoff cap (60 s) of the return.
    assert wait_for(lambda: not stack.mounted("keep"), timeout=90)
    assert stack.mounted("projhome")


class _Forbidden(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).count += 1
        body = b"<html><body><h1>403 Forbidden</h1>proxy says no</body></html>"
        self.send_response(403)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_html_403_is_not_an_empty_list_and_is_not_flooded(stack):
    assert wait_for(lambda: stack.mounted("projhome"), timeout=20)
    stack.api.stop(signal.SIGKILL)
    _Forbidden.count = 0
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", stack.api.port), _Forbidden)
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    try:
        seconds = 40
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert stack.mounted("projhome")
            time.sleep(1)
        # Full-jitter backoff from 1 s doubling: about log2(40) + a few tries, never a flood
        # (guest-agent#283 saw ten million requests in fifteen minutes).
        assert 1 <= _Forbidden.count <= 15, _Forbidden.count
        status = stack.ns.run(stack.agent_command("status", "--json"))
        assert "projhome" in status.stdout
    finally:
        fake.shutdown()
        fake.server_close()
        stack.api.start()
    assert wait_for(lambda: stack.reported("projhome") == "mounted", timeout=60)


def test_sigterm_exits_promptly_and_unmounts_nothing(stack):
    assert wait_for(lambda: stack.mounted("projhome"), timeout=20)
    start = time.monotonic()
    assert stack.stop_agent() == 0
    assert time.monotonic() - start < 5
    assert stack.mounted("projhome")
