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


def _hold(stack, seconds: float, names) -> None:
    """Checks every second, for `seconds`, that each of `names` stays mounted."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert all(stack.mounted(name) for name in names), names
        time.sleep(1)


def test_api_down_then_html_403_for_a_minute_unmounts_nothing_and_is_not_flooded(stack):
    """One minute with no usable API, in two parts on the same port: 20 s of refused connections
    (the API killed), then 40 s of a proxy's HTML 403 page. Neither is read as "nothing attached"."""
    stack.create("keep", scope="project")
    assert wait_for(lambda: stack.mounted("keep"), timeout=20)
    assert wait_for(lambda: stack.mounted("projhome"), timeout=20)
    stack.api.stop(signal.SIGKILL)
    fake = None
    try:
        _hold(stack, 20, ("keep", "projhome"))
        _Forbidden.count = 0
        fake = http.server.ThreadingHTTPServer(("127.0.0.1", stack.api.port), _Forbidden)
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        _hold(stack, 40, ("keep", "projhome"))
        # Full-jitter backoff, uniform in [0, BACKOFF_CAP = 10 s] by now (mean 5 s): about 8 tries
        # in the 40 s, never a flood (guest-agent#283 saw ten million requests in fifteen
        # minutes); at least one, as a pending wait is at most 10 s.
        assert 1 <= _Forbidden.count <= 15, _Forbidden.count
        status = stack.ns.run(stack.agent_command("status", "--json"))
        assert "projhome" in status.stdout
        assert stack.agent.poll() is None
    finally:
        if fake is not None:
            fake.shutdown()
            fake.server_close()
        stack.api.start()
    # Converges when it returns: a deletion made now reaches the instance.
    assert stack.call("DELETE", "/v1.1/p1/os-filesystem/keep").status_code == 202
    # The next try comes within the backoff cap (10 s) of the return; the margin is for a busy machine.
    assert wait_for(lambda: not stack.mounted("keep"), timeout=90)
    assert stack.mounted("projhome")
    assert wait_for(lambda: stack.reported("projhome") == "mounted", timeout=60)


def test_sigterm_exits_promptly_and_unmounts_nothing(stack):
    assert wait_for(lambda: stack.mounted("projhome"), timeout=20)
    start = time.monotonic()
    assert stack.stop_agent() == 0
    assert time.monotonic() - start < 5
    assert stack.mounted("projhome")
