"""The api source against a real HTTP server on loopback that misbehaves on purpose; backoff; identity; sd_notify."""

from __future__ import annotations

import email.utils
import http.server
import json
import os
import socket
import threading
import time

import pytest

from sharedfs_agent import httpclient, identity, wire
from sharedfs_agent.daemon import BACKOFF_CAP, RETRY_AFTER_CAP, Backoff, Wakeup
from sharedfs_agent.errors import ConfigError, SourceUnavailable
from sharedfs_agent.host import systemd
from sharedfs_agent.httpclient import Headers
from sharedfs_agent.model import State, Verdict
from sharedfs_agent.report import write_metrics
from sharedfs_agent.sources import api as api_source
from sharedfs_agent.sources.api import ApiClient, ApiPlugin, ApiSource, read_token

GOOD = b'{"filesystems": [{"name": "a"}]}'


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers with whatever the test put in `answers` (status, headers, body), in order."""

    answers: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.path, self.headers.get("If-None-Match"), self.headers.get("X-Auth-Token")))
        status, headers, body = type(self).answers.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Scripted.answers, Scripted.seen = [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def source(url):
    return ApiSource(ApiClient(url, "tok"), "p1", "vm1")


def api_settings(**given):
    """The [api] section as the agent sees it: every key, defaults filled."""
    return {**{key: spec.default for key, spec in ApiPlugin.keys.items()}, **given}


def test_good_answer_then_304_returns_the_held_document(server):
    Scripted.answers = [(200, {"Content-Type": "application/json", "ETag": '"e1"'}, GOOD),
                        (304, {"ETag": '"e1"'}, b"")]  # fmt: skip
    s = source(server)
    assert s.fetch() == GOOD
    assert s.fetch(wait=5) == GOOD
    assert Scripted.seen[1] == ("/v1.1/p1/os-instances/vm1/filesystems?wait=5", '"e1"', "tok")


@pytest.mark.parametrize(
    "answer, words",
    [
        ((403, {"Content-Type": "text/html"}, b"<html>403 Forbidden</html>"), "HTTP 403"),
        ((200, {"Content-Type": "text/html"}, b"<html>login page</html>"), "not JSON"),
        ((200, {"Content-Type": "application/json"}, b'{"filesystems": [{"na'), "not valid JSON"),
        ((200, {"Content-Type": "application/json"}, b"[]"), 'no "filesystems" list'),
        ((200, {"Content-Type": "application/json"}, b'{"error": "x"}'), 'no "filesystems" list'),
        ((200, {"Content-Type": "application/json", "Content-Length": "100"}, GOOD), "truncated"),
        ((304, {}, b""), "HTTP 304"),  # a 304 for a document we never had
        ((500, {"Content-Type": "application/json"}, b'{"error": {"message": "db down"}}'), "db down"),
    ],
)
def test_anything_else_is_source_unavailable(server, answer, words):
    Scripted.answers = [answer]
    with pytest.raises(SourceUnavailable, match=None) as e:
        source(server).fetch()
    assert words in str(e.value)


def test_retry_after_is_carried(server):
    Scripted.answers = [(503, {"Retry-After": "42"}, b"busy")]
    with pytest.raises(SourceUnavailable) as e:
        source(server).fetch()
    assert e.value.retry_after == 42


def test_unreachable_is_source_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(SourceUnavailable, match="Connection refused"):
            source(f"http://127.0.0.1:{port}").fetch()


def test_token_file_must_be_private(tmp_path):
    path = tmp_path / "token"
    path.write_text("secret\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(str(path))
    os.chmod(path, 0o600)
    assert read_token(str(path)) == "secret"


def test_backoff_is_full_jitter_exponential_and_honours_retry_after():
    highs = []
    backoff = Backoff(base=1, cap=60, rng=lambda lo, hi: highs.append(hi) or hi)
    delays = [backoff.next() for _ in range(8)]
    assert highs == [1, 2, 4, 8, 16, 32, 60, 60] and delays == highs
    assert Backoff(rng=lambda lo, hi: 0.0).next(retry_after=30) == 30
    backoff.reset()
    assert backoff.next() == 1


def test_retry_after_is_honoured_with_jitter_never_sooner():
    # The server's seconds, then up to half as long again (not the exponential delay: the server said when).
    assert Backoff(rng=lambda lo, hi: lo).next(retry_after=4) == 4
    assert Backoff(rng=lambda lo, hi: hi).next(retry_after=4) == 6
    failing = Backoff(rng=lambda lo, hi: hi)
    for _ in range(10):
        failing.next()
    assert failing.next(retry_after=2) == 3  # a long outage's 10 s cap does not hold back a told agent
    assert Backoff(rng=lambda lo, hi: hi).next(retry_after=10_000) == RETRY_AFTER_CAP * 1.5
    assert Backoff(rng=lambda lo, hi: hi).next(retry_after=0) == 1  # "0" is no request: our own backoff


@pytest.mark.parametrize(
    "value, seconds",
    [("3", 3.0), (" 120 ", 120.0), ("", None), ("soon", None), ("-5", None), ("1.5", None),
     ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_parsing(value, seconds):
    assert api_source._retry_after(Headers({"retry-after": value})) == seconds


def test_retry_after_as_a_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= api_source._retry_after(Headers({"retry-after": when})) <= 30


def test_identity_order_config_cloud_init_metadata_config_drive(tmp_path, server):
    data = tmp_path / "instance-data.json"
    data.write_text(json.dumps({"v1": {"instance_id": "from-cloud-init"}, "ds": {"meta_data": {}}}))
    meta = json.dumps({"uuid": "from-metadata", "project_id": "proj-md"}).encode()
    Scripted.answers = [(200, {"Content-Type": "application/json"}, meta)]
    settings = api_settings(instance_data=str(data), metadata_url=server)
    assert identity.discover(settings) == ("from-cloud-init", "proj-md")
    assert Scripted.seen[0][0] == "/openstack/latest/meta_data.json"
    assert identity.discover(api_settings(instance_id="i", project="p", metadata_url=server)) == ("i", "p")

    drive = tmp_path / "drive" / "openstack" / "latest"
    drive.mkdir(parents=True)
    (drive / "meta_data.json").write_text(json.dumps({"uuid": "from-drive", "project_id": "proj-d"}))
    Scripted.answers = [(404, {}, b"")]
    settings = api_settings(instance_data=str(tmp_path / "none"), metadata_url=server,
                            config_drive_dir=str(tmp_path / "drive"))  # fmt: skip
    assert identity.discover(settings) == ("from-drive", "proj-d")
    Scripted.answers = [(404, {}, b"")]
    with pytest.raises(ConfigError, match="instance_id and project"):
        identity.discover(api_settings(instance_data=str(tmp_path / "none"), metadata_url=server,
                                      config_drive_dir=str(tmp_path / "empty")))  # fmt: skip


def test_addresses_exclude_loopback_and_link_local():
    for address in identity.addresses():
        assert not address.startswith(("127.", "169.254.", "fe80:")) and address != "::1"


def test_sd_notify_speaks_the_datagram_protocol(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    assert systemd.watchdog_interval() == 10


def test_metrics_textfile(tmp_path):
    path = tmp_path / "sharedfs.prom"
    write_metrics(str(path), [Verdict("home", '/mnt/a"b', State.MOUNTED)], True, 3)
    text = path.read_text()
    assert 'sharedfs_filesystem_state{name="home",mount_point="/mnt/a\\"b",state="mounted"} 1' in text
    assert "sharedfs_source_up 1" in text and "sharedfs_passes_total 3" in text


def test_addresses_from_netlink_are_psutils():
    """The daemon reads addresses from one rtnetlink dump, not psutil (3 MB less): the same set."""

    def accepted(candidates):
        found = set()
        for address in candidates:
            try:
                found.add(wire.check_address(address))
            except ValueError:
                pass
        return found

    assert accepted(identity._netlink_addresses()) == accepted(identity._psutil_addresses())
    assert set(identity.addresses()) == accepted(identity._psutil_addresses())


def test_backoff_default_cap_brings_an_agent_back_within_15_s():
    highs = []
    backoff = Backoff(rng=lambda lo, hi: highs.append(hi) or hi)
    for _ in range(50):
        backoff.next()
    assert max(highs) == BACKOFF_CAP <= 15 - 5  # 5 s left for the request and the pass
    assert Backoff(rng=lambda lo, hi: 0.0).next(retry_after=120) == 120  # the server's floor is not capped to ours


def test_proxies_from_the_environment_and_no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert httpclient.proxy_for("http", "api.example") is None
    monkeypatch.setenv("HTTP_PROXY", "proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://tls-proxy.example:8080/")
    monkeypatch.setenv("no_proxy", "localhost, .internal")
    assert httpclient.proxy_for("http", "api.example") == ("proxy.example", 3128)
    assert httpclient.proxy_for("https", "api.example") == ("tls-proxy.example", 8080)
    assert httpclient.proxy_for("http", "api.internal") is None and httpclient.proxy_for("http", "a.b.internal") is None
    assert httpclient.proxy_for("http", "localhost") is None
    monkeypatch.setenv("no_proxy", "*")
    assert httpclient.proxy_for("https", "api.example") is None


def test_the_idle_daemon_loads_neither_ssl_nor_importlib_metadata_nor_psutil(tmp_path):
    """An http:// API and no plugin installed: the modules that cost megabytes stay out."""
    import subprocess
    import sys

    code = (
        "import sys; from sharedfs_agent import cli, daemon, identity; from sharedfs_agent.sources import registry;"
        "from sharedfs_agent.mounters import registry as mounters; registry(); mounters(); identity.addresses();"
        "from sharedfs_agent import httpclient; from sharedfs_agent.sources.api import ApiClient\n"
        "client = ApiClient('http://127.0.0.1:9', 'token')\n"
        "try: httpclient.exchange(client.url + '/', timeout=1)\nexcept OSError: pass\n"
        "print(sorted(m for m in ('ssl', 'importlib.metadata', 'psutil', 'urllib.request', 'http.client', 'email',"
        " 'tempfile', 'shutil') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
    https = code.replace("http://127.0.0.1:9", "https://127.0.0.1:9")
    loaded = subprocess.run([sys.executable, "-c", https], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['ssl']"  # an https URL brings TLS, and only then


def test_wakeup_sleeps_until_set_from_another_thread():
    wakeup = Wakeup()
    try:
        assert not wakeup.wait(0.01)
        timer = threading.Timer(0.05, wakeup.set)
        timer.start()
        assert wakeup.wait(5)
        wakeup.set()
        wakeup.set()  # set twice, woken once
        assert wakeup.wait(0) and not wakeup.wait(0)
    finally:
        wakeup.close()
