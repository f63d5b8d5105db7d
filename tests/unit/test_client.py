"""sharedfs_client without a server: output formats, terminal safety, --wait's rules, HTTP against a loopback fake."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sharedfs_client import ApiError, BadAnswer, Client, Unreachable, UrllibTransport
from sharedfs_client.api import Reply
from sharedfs_client.cli import Display, ExitStatus, main
from sharedfs_client.output import render_list, render_one, sanitize, to_yaml
from sharedfs_client.wait import Goal, Progress, assess, follow

# -- output -----------------------------------------------------------------------------------


def test_sanitize_makes_terminal_controls_visible():
    hostile = "ok\x1b]0;pwned\x07\x1b[2J\r\nnext\x9b31m\u202eevil\x7f\ttab"
    shown = sanitize(hostile)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\u202e" not in shown
    assert shown == "ok\\x1b]0;pwned\\x07\\x1b[2J\\r\\nnext\\x9b31m\\u202eevil\\x7f\\ttab"
    assert sanitize("/mnt/données") == "/mnt/données"  # ordinary non-ASCII text is left alone


def test_table_value_and_show():
    rows = [{"name": "home", "size": "1Gb", "mount_options": ["acl", "ro"], "connected": True, "detail": "a\x1bb"},
            {"name": "scratch-longer", "size": "80Gb", "mount_options": [], "connected": False, "detail": None}]  # fmt: skip
    columns = ("name", "size", "mount_options", "connected", "detail")
    table = render_list(rows, columns, ("Name", "Size", "Options", "Connected", "Detail"), "table")
    assert table.splitlines() == [
        "+----------------+------+---------+-----------+--------+",
        "| Name           | Size | Options | Connected | Detail |",
        "+----------------+------+---------+-----------+--------+",
        "| home           | 1Gb  | acl, ro | yes       | a\\x1bb |",
        "| scratch-longer | 80Gb |         | no        |        |",
        "+----------------+------+---------+-----------+--------+",
    ]
    assert render_list(rows, ("name", "size"), ("Name", "Size"), "value") == "home 1Gb\nscratch-longer 80Gb"
    assert json.loads(render_list(rows, ("name",), ("Name",), "json")) == [{"name": "home"}, {"name": "scratch-longer"}]
    assert render_one(rows[0], ("name", "size"), "value") == "home\n1Gb"
    assert "| name  | home  |" in render_one(rows[0], ("name", "size"), "table")
    assert render_list([], ("name",), ("Name",), "table").count("\n") == 2  # headings only


def test_json_output_is_ascii_so_controls_are_escaped():
    text = render_one({"detail": "x\x1b[31my\u202e"}, ("detail",), "json")
    assert text.isascii() and "\x1b" not in text
    assert json.loads(text) == {"detail": "x\x1b[31my\u202e"}


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)  # fmt: skip


@given(DATA)
def test_yaml_subset_reads_back_as_the_same_data(data):
    text = to_yaml(data)
    assert text.isascii()
    assert yaml.safe_load(text) == data


@pytest.mark.parametrize("word", ["yes", "No", "on", "null", "~", "1Gb", "0x10", "1e3", "2024-01-01", "a: b", "- x",
                                  "#c", "", " lead", "*ref", "&a", "!tag", "%x", "@x", "`x", "{a}", "[a]", "'q'", '"q"'])  # fmt: skip
def test_yaml_quotes_what_would_read_as_something_else(word):
    assert yaml.safe_load(to_yaml({"k": word})) == {"k": word}


# -- --wait's rules -----------------------------------------------------------------------------

NOW = 1_700_000_100.0
AVAILABLE = {"name": "home", "status": "available", "scope": "project", "status_detail": ""}


def row(id_, state, connected=True, detail="", updated_at="2023-11-14T22:13:20+00:00"):
    return {"id": id_, "mount_state": state, "connected": connected, "detail": detail, "updated_at": updated_at}


def test_mounted_waits_for_every_connected_instance():
    progress = assess(AVAILABLE, [row("vm1", "mounted"), row("vm2", "pending", updated_at=None)], Goal("mounted"), NOW)
    assert not progress.settled
    assert [(w.who, w.state, w.age) for w in progress.waiting] == [("vm2", "pending", None)]
    assert progress.states == (("vm1", "mounted"), ("vm2", "pending"))
    done = assess(AVAILABLE, [row("vm1", "mounted"), row("old", "unmounted", connected=False)], Goal("mounted"), NOW)
    assert done.ok
    assert assess(AVAILABLE, [], Goal("mounted"), NOW).ok  # nothing connected: nothing to wait for


def test_an_error_settles_and_is_named_with_its_detail():
    rows = [row("vm1", "error", detail="mount_point '/srv/x' is outside the allowed roots"), row("vm2", "mounted")]
    progress = assess(AVAILABLE, rows, Goal("mounted"), NOW)
    assert progress.settled and not progress.ok
    assert [(w.who, w.detail, w.age) for w in progress.failed] == [
        ("vm1", "mount_point '/srv/x' is outside the allowed roots", 100.0)]  # fmt: skip
    # ...but only once nobody else is still on the way
    assert not assess(AVAILABLE, rows + [row("vm3", "pending")], Goal("mounted"), NOW).settled


def test_the_filesystem_itself():
    creating = assess({**AVAILABLE, "status": "creating"}, [], Goal("mounted"), NOW)
    assert not creating.settled and creating.waiting[0].who == "filesystem"
    broken = assess({**AVAILABLE, "status": "error", "status_detail": "volume create failed"}, [], Goal("mounted"), NOW)
    assert broken.settled and broken.failed[0].detail == "volume create failed"
    assert not assess(None, [], Goal("mounted"), NOW).ok  # deleted under us
    assert assess(None, [], Goal("gone"), NOW).ok
    assert not assess({**AVAILABLE, "status": "deleting"}, [], Goal("gone"), NOW).settled


def test_gone_waits_for_every_instance_that_reported_to_let_go_then_for_the_404():
    deleting = {**AVAILABLE, "status": "deleting"}
    rows = [row("vm1", "mounted"), row("vm2", "unmounted"), row("vm3", "pending", updated_at=None),
            row("vm4", "busy", detail="in use")]  # fmt: skip
    progress = assess(deleting, rows, Goal("gone"), NOW)
    assert not progress.settled
    # vm3 never reported (it holds nothing); the server's worker waits for the others, then deletes.
    assert [(w.who, w.state, w.detail, w.age) for w in progress.waiting] == [
        ("vm1", "mounted", "", 100.0), ("vm4", "busy", "in use", 100.0), ("filesystem", "deleting", "", None)]  # fmt: skip
    assert progress.states == (("vm1", "mounted"), ("vm2", "unmounted"), ("vm4", "busy"))
    everyone_off = assess(deleting, [row("vm1", "unmounted"), row("vm2", "unmounted")], Goal("gone"), NOW)
    assert [w.who for w in everyone_off.waiting] == ["filesystem"] and not everyone_off.settled
    assert assess(None, [], Goal("gone"), NOW).ok  # settled only by the 404


def test_gone_fails_naming_an_instance_whose_unmount_failed_but_not_an_old_error():
    deleting = {**AVAILABLE, "status": "deleting"}
    failed = row("vm1", "error", detail="umount: target is hung", updated_at="2023-11-14T22:14:50+00:00")
    progress = assess(deleting, [failed], Goal("gone"), NOW, since=NOW - 20)
    assert progress.settled and not progress.ok
    assert [(w.who, w.detail, w.age) for w in progress.failed] == [("vm1", "umount: target is hung", 10.0)]
    assert not assess(deleting, [failed, row("vm2", "mounted")], Goal("gone"), NOW, since=NOW - 20).settled
    # An error from before the wait began (a mount refused long ago) was never a mount: not named.
    old = assess(deleting, [row("vm1", "error", detail="refused: outside the allowed roots")], Goal("gone"), NOW,
                 since=NOW - 20)  # fmt: skip
    assert [w.who for w in old.waiting] == ["filesystem"] and not old.failed
    broken = assess({**AVAILABLE, "status": "error", "status_detail": "delete failed: volume busy"}, [], Goal("gone"), NOW)
    assert broken.settled and broken.failed[0].detail == "delete failed: volume busy"


def test_one_instance_goals():
    goal = Goal("mounted", "vm2")
    assert assess(AVAILABLE, [row("vm1", "pending"), row("vm2", "mounted")], goal, NOW).ok
    assert not assess(AVAILABLE, [row("vm1", "mounted")], goal, NOW).settled
    off = Goal("unmounted", "vm1")
    instance_scope = {**AVAILABLE, "scope": "instance"}
    assert assess(instance_scope, [row("vm1", "unmounted", connected=False)], off, NOW).ok
    assert assess(instance_scope, [], off, NOW).ok  # never reported: nothing to unmount
    assert not assess(instance_scope, [row("vm1", "mounted", connected=False)], off, NOW).settled
    assert not assess(instance_scope, [row("vm1", "busy", connected=False)], off, NOW).settled
    still = assess(AVAILABLE, [row("vm1", "mounted")], off, NOW)  # project scope: still belongs there
    assert still.settled and "every instance of the project" in still.failed[0].detail


class FakeClient:
    """Answers from a script of (entry, rows) pairs, one per poll."""

    def __init__(self, script):
        self.script = list(script)

    def server_now(self):
        return NOW

    def get_filesystem(self, name):
        entry, self.rows = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if entry == "down":
            raise Unreachable("GET http://api: URLError: [Errno 111] Connection refused")
        if entry is None:
            raise ApiError(404, "not found")
        return entry

    def filesystem_instances(self, name):
        return self.rows


def test_follow_polls_until_settled_and_times_out():
    script = [(AVAILABLE, [row("vm1", "pending")])] * 3 + [(AVAILABLE, [row("vm1", "mounted")])]
    seen, slept = [], []
    clock = iter(range(100)).__next__
    result = follow(FakeClient(script), "home", Goal("mounted"), 60, lambda p, t: seen.append(p.states),
                    sleep=slept.append, clock=clock)  # fmt: skip
    assert result.ok and len(seen) == 4 and slept == [1.0] * 3
    from sharedfs_client.wait import WaitTimeout

    with pytest.raises(WaitTimeout) as caught:
        follow(FakeClient([(AVAILABLE, [row("vm1", "pending")])]), "home", Goal("mounted"), 5, lambda p, t: None,
               sleep=lambda s: None, clock=iter(range(100)).__next__)  # fmt: skip
    assert caught.value.progress.waiting[0].who == "vm1"


def test_follow_ends_on_404_for_gone():
    script = [(AVAILABLE, []), (None, [])]
    result = follow(FakeClient(script), "home", Goal("gone"), 60, lambda p, t: None, sleep=lambda s: None,
                    clock=iter(range(100)).__next__)  # fmt: skip
    assert result.ok


def test_follow_keeps_watching_through_an_unreachable_api():
    script = [("down", []), (AVAILABLE, [row("vm1", "mounted")])]
    seen = []
    result = follow(FakeClient(script), "home", Goal("mounted"), 60, lambda p, t: seen.append(p.waiting),
                    sleep=lambda s: None, clock=iter(range(100)).__next__)  # fmt: skip
    assert result.ok and seen[0][0].who == "api" and "Connection refused" in seen[0][0].detail


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_progress_rewrites_one_line_on_a_tty_and_prints_changes_otherwise():
    states = [(("vm1", "pending"),), (("vm1", "pending"),), (("vm1", "mounted"),)]
    tty, plain = FakeTty(), io.StringIO()
    for stream in (tty, plain):
        display = Display(stream, "home", "mounted")
        for i, s in enumerate(states):
            display(Progress(i == 2, (), (), s), float(i))
        display.close()
    assert tty.getvalue() == ("\r\x1b[Khome: vm1 pending (0s)\r\x1b[Khome: vm1 pending (1s)"
                              "\r\x1b[Khome: vm1 mounted (2s)\n")  # fmt: skip
    assert plain.getvalue() == "home: vm1 pending (0s)\nhome: vm1 mounted (2s)\n"


# -- HTTP against a loopback fake ---------------------------------------------------------------


class Fake(http.server.BaseHTTPRequestHandler):
    """Answers by path; records what it was sent."""

    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
        status, kind, body = ANSWERS.get(self.path.rsplit("/", 1)[-1], (404, "application/json", b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        declared = len(body) + 50 if self.path.endswith("truncated") else len(body)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args):
        pass


ANSWERS = {
    "os-filesystem": (200, "application/json", b'{"fs_entries": [{"name": "a\\u001b[2Jb", "size": "1Gb"}]}'),
    "home": (201, "application/json", b'{"fs_entry": {"name": "home", "status": "available"}}'),
    "refused": (409, "application/json", b'{"error": {"code": 409, "message": "already exists \\u001b[31m"}}'),
    "proxy": (502, "text/html", b"<html><body>Bad Gateway</body></html>"),
    "html": (200, "text/html", b"<html>login page</html>"),
    "truncated": (200, "application/json", b'{"fs_entry": {'),
    "shape": (200, "application/json", b'{"something": 1}'),
}


@pytest.fixture(scope="module")
def fake():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_client_sends_token_json_and_quoted_names(fake):
    Fake.seen.clear()
    client = Client(fake + "/", "p1", UrllibTransport("s3cret"))
    created, entry = client.create_filesystem("home", "1Gb", scope="project", mount_options=["acl"])
    assert created and entry["status"] == "available"
    method, path, headers, body = Fake.seen[-1]
    assert (method, path) == ("PUT", "/v1.1/p1/os-filesystem/home")
    assert headers["X-Auth-Token"] == "s3cret" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"fs_entry": {"size": "1Gb", "scope": "project", "mount_options": ["acl"]}}
    with pytest.raises(BadAnswer):  # the fake answers 404 with no API error for unknown paths
        client.get_filesystem("../../os-instances")
    assert Fake.seen[-1][1] == "/v1.1/p1/os-filesystem/..%2F..%2Fos-instances"


def test_client_errors_by_kind(fake):
    client = Client(fake, "p1", UrllibTransport("t"))
    with pytest.raises(ApiError) as refused:
        client.get_filesystem("refused")
    assert (refused.value.status, refused.value.message) == (409, "already exists \x1b[31m")
    for name, words in (("proxy", "HTTP 502 that is not the API's error"), ("html", "not JSON"),
                        ("truncated", "truncated"), ("shape", '"fs_entry"')):  # fmt: skip
        with pytest.raises(BadAnswer, match=words):
            client.get_filesystem(name)
    with pytest.raises(Unreachable, match="Connection refused"):
        Client("http://127.0.0.1:1", "p1", UrllibTransport("t")).list_filesystems()


def run_cli(*argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=env if env is not None else {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_settings_and_one_line_errors(fake):
    env = {"SHAREDFS_URL": fake, "SHAREDFS_TOKEN": "t", "SHAREDFS_PROJECT": "p1"}
    code, out, err = run_cli("fs", "list", "-f", "value", env=env)
    # value: the columns separated by one space each, empty ones too (as cliff's value formatter)
    assert (code, out, err) == (0, "a\\x1b[2Jb 1Gb" + " " * 5 + "\n", "")
    code, out, err = run_cli("fs", "show", "refused", env=env)
    assert (code, err) == (ExitStatus.API_ERROR, "sharedfs: already exists \\x1b[31m (HTTP 409)\n")
    code, out, err = run_cli("fs", "show", "proxy", env=env)
    assert code == ExitStatus.UNREACHABLE and err.count("\n") == 1 and "502" in err
    code, _, err = run_cli("--url", "http://127.0.0.1:1", "fs", "list", env=env)
    assert code == ExitStatus.UNREACHABLE and "Connection refused" in err and err.count("\n") == 1
    # options before or after the command words; options win over the environment
    Fake.seen.clear()
    assert run_cli("--project", "p9", "fs", "list", "--token", "t2", env=env)[0] == 0
    assert Fake.seen[-1][1] == "/v1.1/p9/os-filesystem" and Fake.seen[-1][2]["X-Auth-Token"] == "t2"


@pytest.mark.parametrize("env, words", [
    ({}, "no API endpoint"),
    ({"SHAREDFS_URL": "ftp://x"}, "not an http"),
    ({"SHAREDFS_URL": "http://x"}, "no token"),
    # OS_* stand in for the token (tests/openstack/test_osc_plugin.py uses them against a real Keystone)
    ({"SHAREDFS_URL": "http://x", "OS_AUTH_URL": "http://keystone", "OS_AUTH_TYPE": "nonesuch"}, "OS_AUTH_TYPE=nonesuch"),
    ({"OS_AUTH_URL": "http://keystone", "OS_AUTH_TYPE": "v3password"}, "OS_* credentials"),
    ({"SHAREDFS_URL": "http://x", "SHAREDFS_TOKEN": "t"}, "no project"),
])  # fmt: skip
def test_cli_missing_settings_are_usage_errors(env, words):
    code, out, err = run_cli("fs", "list", env=env)
    assert code == ExitStatus.USAGE and words in err and out == ""


def test_closed_pipe_is_not_a_traceback(fake):
    env = {**os.environ, "SHAREDFS_URL": fake, "SHAREDFS_TOKEN": "t", "SHAREDFS_PROJECT": "p1"}
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already gone
    try:
        done = subprocess.run([sys.executable, "-m", "sharedfs_client", "fs", "list"], env=env, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=30)  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_cli_usage_errors_exit_2():
    with pytest.raises(SystemExit) as caught:
        run_cli("fs", "create", "home")  # --size missing
    assert caught.value.code == 2


@pytest.mark.parametrize("url, expected", [
    ("https://sfs.example:8776/v1.1/0a1b2c", ("https://sfs.example:8776", "0a1b2c")),
    ("https://sfs.example:8776/v1.1/0a1b2c/", ("https://sfs.example:8776", "0a1b2c")),
    ("https://sfs.example/prefix/v1.1", ("https://sfs.example/prefix", None)),
    ("https://sfs.example:8776/", ("https://sfs.example:8776", None)),
])  # fmt: skip
def test_catalog_urls_split_into_the_clients_root_and_project(url, expected):
    from sharedfs_client.osc.session import split_endpoint

    assert split_endpoint(url) == expected


class Scripted:
    """A transport that gives the scripted replies in turn and records each call."""

    def __init__(self, *replies):
        self.replies, self.calls = list(replies), []

    def send(self, method, url, headers, body, timeout):
        self.calls.append((method, url, body))
        return self.replies.pop(0)


def test_a_shed_call_is_sent_again_after_retry_after_and_other_503s_are_errors():
    shed = Reply(503, {"Retry-After": "0"}, b'{"error": {"code": 503, "message": "busy"}}')
    listing = Reply(200, {"Content-Type": "application/json"}, b'{"fs_entries": []}')
    transport = Scripted(shed, shed, listing)
    assert Client("http://api", "p1", transport).list_filesystems() == []
    assert len(transport.calls) == 3 and len(set(transport.calls)) == 1  # the same call each time
    down = Reply(503, {"Content-Type": "application/json"}, b'{"error": {"code": 503, "message": "driver down"}}')
    transport = Scripted(down)
    with pytest.raises(ApiError, match="driver down"):
        Client("http://api", "p1", transport).list_filesystems()
    assert len(transport.calls) == 1  # no Retry-After: not a shed call, not sent again
