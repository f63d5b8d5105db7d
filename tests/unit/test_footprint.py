"""The idle daemon's footprint stays small: what it imports, argv without argparse, records without dataclasses, inotify."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping, Optional, Tuple

import pytest

from sharedfs_agent import cli, records
from sharedfs_agent.model import Access, Filesystem
from sharedfs_agent.sources import file as file_source

REPO = Path(__file__).resolve().parents[2]

# What an idle daemon with an http API source must not hold (issue 15): each is memory paid in
# every instance for nothing an idle pass does. Measured on Debian 12's Python (docs/benchmarks.md).
NOT_WHEN_IDLE = {
    "inspect": "dataclasses' import, about 1 MB: sharedfs_agent.records makes the records",
    "dataclasses": "imports inspect: use sharedfs_agent.records",
    "argparse": "0.3 MB: `run` is parsed by cli._run_args",
    "ssl": "OpenSSL, 1.4 MB USS and 4 MB RSS: only for https",
    "http.client": "2.6 MB with email: the agent speaks HTTP on a socket (httpclient.py)",
    "email": "0.7 MB: only for a Retry-After date",
    "urllib.request": "brings http.client",
    "importlib.metadata": "2.6 MB: only when a plugin is installed",
    "subprocess": "0.3 MB: only when a helper runs",
    "ctypes": "0.25 MB: only for the file source's inotify",
    "tempfile": "with shutil, random's hashlib, bz2, lzma: a memfd is used instead",
    "shutil": "only when a FUSE helper is about to run",
    "psutil": "addresses come from rtnetlink",
}


def _imported(stderr: str) -> set:
    """Module names from `python -X importtime` output."""
    return {
        line.split("|")[2].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line
    }


class _Api(http.server.BaseHTTPRequestHandler):
    """The agent's side of sharedfs-api, for one instance with nothing attached: the document,
    then the long-poll held until the test ends (as a real server holds it for 60 s)."""

    protocol_version = "HTTP/1.1"
    held = threading.Event()
    release = threading.Event()

    def _answer(self, status: int, body: bytes = b"", headers: Optional[Mapping[str, str]] = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.headers.get("If-None-Match") == '"1"' and "wait=" in self.path:
            type(self).held.set()
            type(self).release.wait(30)
            self._answer(304, headers={"ETag": '"1"'})
        else:
            self._answer(200, b'{"filesystems": []}', {"ETag": '"1"', "Content-Type": "application/json"})

    def do_PUT(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(200, b"{}", {"Content-Type": "application/json"})

    def log_message(self, *args):
        pass


def _run_idle_daemon(tmp_path: Path) -> Tuple[set, str]:
    """`sharedfs-agent run` (api source over http, nothing attached) until it holds its long-poll
    after its first pass; what it imported, and its log."""
    _Api.held.clear()
    _Api.release.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("tok\n")
    token.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    (tmp_path / "fstab").write_text("UUID=0a1b / ext4 defaults 0 1\n")
    config = tmp_path / "agent.conf"
    config.write_text(
        f"[agent]\nsource = api\nstate_dir = {tmp_path}/state\nfstab = {tmp_path}/fstab\nallowed_roots = {tmp_path}/mnt\n"
        f"[api]\nurl = http://127.0.0.1:{httpd.server_address[1]}\ntoken_file = {token}\ninstance_id = vm1\n"
        "project = p1\nvendordata_provider =\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "sharedfs_agent", "run", "--config", str(config)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)  # fmt: skip
    try:
        status = tmp_path / "state" / "status.json"
        deadline = time.monotonic() + 20
        while not (_Api.held.is_set() and status.exists()) and proc.poll() is None and time.monotonic() < deadline:
            _Api.held.wait(0.05)
        assert _Api.held.is_set() and status.exists(), "the daemon did not reach its idle long-poll"
    finally:
        proc.send_signal(signal.SIGTERM)
        _Api.release.set()
        _, stderr = proc.communicate(timeout=20)
        httpd.shutdown()
        httpd.server_close()
    return _imported(stderr), stderr


def test_the_idle_daemon_with_an_http_api_source_imports_none_of_the_heavy_modules(tmp_path):
    started = _imported(subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True,
                                       text=True, check=True).stderr)  # fmt: skip
    imported, stderr = _run_idle_daemon(tmp_path)
    assert "sharedfs_agent.daemon" in imported and "sharedfs_agent.sources.api" in imported, stderr[-2000:]
    heavy = {name: why for name, why in NOT_WHEN_IDLE.items() if name in imported - started}
    assert heavy == {}, f"the idle daemon imports {', '.join(heavy)}: {heavy}"


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "--config", "/etc/a.conf"],
        ["run", "--config=/etc/a.conf", "-v"],
        ["run", "-v", "--config", "/x", "--verbose", "--config", "/y"],
        ["run", "--config="],
        ["run", "--config", ""],
    ],
)
def test_run_is_parsed_without_argparse_exactly_as_argparse_parses_it(argv):
    fast = cli._run_args(argv)
    assert fast is not None
    assert vars(fast) == vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["once"],
        ["run", "--help"],
        ["run", "--conf", "/x"],  # an abbreviation: argparse's to accept
        ["run", "--config"],
        ["run", "--config", "-v"],
        ["run", "-vv"],
        ["run", "extra"],
        ["run", "--", "-v"],
        ["--version", "run"],
    ],
)
def test_anything_else_is_left_to_argparse(argv):
    assert cli._run_args(argv) is None


def test_a_mistake_in_run_is_answered_by_argparse_as_before(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--config"])
    assert exit_.value.code == 2 and "expected one argument" in capsys.readouterr().err


def _both(**options):
    """The same class made by the standard dataclass and by records.dataclass."""

    def make(decorator, field):
        class Entry:
            name: str
            mount_point: Optional[str]
            tags: Tuple[str, ...] = ()
            extra: Mapping[str, str] = field(default_factory=dict)

            @property
            def label(self) -> str:
                return f"{self.name}@{self.mount_point}"

        return decorator(**options)(Entry)

    return make(dataclasses.dataclass, dataclasses.field), make(records.dataclass, records.field)


def test_records_behave_as_frozen_dataclasses():
    std, ours = _both(frozen=True)
    for cls in (std, ours):
        a, b = cls("home", "/mnt/home"), cls(name="home", mount_point="/mnt/home", tags=(), extra={})
        assert a == b and a != cls("home", None) and a.label == "home@/mnt/home"
        assert a.extra == {} and a.extra is not cls("x", None).extra  # a new default for each
        with pytest.raises(TypeError):
            hash(a)  # the hash is the fields': a dict in one is unhashable
        with pytest.raises(AttributeError):
            a.name = "other"
        with pytest.raises(AttributeError):
            del a.name
        with pytest.raises(TypeError):
            cls("home")  # a required field missing
        with pytest.raises(TypeError):
            cls("home", "/m", (), {}, "one too many")
        with pytest.raises(TypeError):
            cls("home", "/m", name="twice")
        assert not hasattr(cls, "extra")  # no class attribute holds the factory
        assert cls.tags == ()
    assert repr(ours("home", "/mnt/home", ("a",))) == repr(std("home", "/mnt/home", ("a",))).replace(
        std.__qualname__, ours.__qualname__
    )
    assert (ours("a", None) == std("a", None)) is False  # another class is never equal
    with pytest.raises(records.FrozenInstanceError, match="cannot assign to field 'name'"):
        ours("a", None).name = "b"
    one, same = (Filesystem("home", "nfs", "h:/e", "/mnt/home", ("hard",)) for _ in range(2))
    assert hash(one) == hash(same) and {one, same} == {one}
    assert hash(one) == hash(("home", "nfs", "h:/e", "/mnt/home", ("hard",), Access.RW, False))


def test_record_fields_hidden_from_repr_or_comparison_as_in_dataclasses():
    def make(decorator, field):
        @decorator(frozen=True)
        class Keyed:
            name: str
            secret: str = field(default="", repr=False, compare=False)
            rank: int = field(default=0)

        return Keyed

    std, ours = make(dataclasses.dataclass, dataclasses.field), make(records.dataclass, records.field)
    for cls in (std, ours):
        a, b = cls("home", "s3cret"), cls("home", "other")
        assert a == b and hash(a) == hash(b) and a.secret == "s3cret" and cls("x").secret == ""
        assert "s3cret" not in repr(a) and repr(a).endswith("(name='home', rank=0)")
        assert cls.secret == "" and cls.rank == 0  # the class attribute is the default, as dataclasses'
    with pytest.raises(ValueError):
        records.field(default=1, default_factory=list)


def test_records_refuse_what_they_do_not_make():
    with pytest.raises(TypeError, match="frozen records only"):
        records.dataclass(frozen=False)
    with pytest.raises(TypeError, match="non-default field 'b' follows a default one"):

        @records.dataclass(frozen=True)
        class Bad:
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="makes its own __eq__"):

        @records.dataclass(frozen=True)
        class OwnEq:
            a: int

            def __eq__(self, other):
                return True

    @records.dataclass(frozen=True)
    class Base:
        a: int

    with pytest.raises(TypeError, match="cannot inherit"):

        @records.dataclass(frozen=True)
        class Child(Base):
            b: int


def _fetch_in_thread(source, wait: float):
    got: dict = {}

    def run():
        started = time.monotonic()
        got["data"] = source.fetch(wait=wait)
        got["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


def _until_watching(source) -> None:
    deadline = time.monotonic() + 5
    while source.watch is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.watch is not None, "fetch(wait) did not watch the directory with inotify"


def test_the_file_source_wakes_on_a_write_and_on_a_rename_through_inotify(tmp_path):
    path = tmp_path / "filesystems.json"
    path.write_text('{"filesystems": []}')
    source = file_source.FileSource(str(path))
    assert source.fetch() == b'{"filesystems": []}'
    # Rewritten in place: seen at once, long before the 5 s stamp check.
    thread, got = _fetch_in_thread(source, 30)
    _until_watching(source)
    path.write_text('{"filesystems": [1]}')
    thread.join(10)
    assert got["data"] == b'{"filesystems": [1]}' and got["seconds"] < file_source.POLL_WATCHED
    assert source.watch is None  # the descriptor is closed when the wait ends
    # Replaced by a rename (how installers write it): seen at once too.
    thread, got = _fetch_in_thread(source, 30)
    _until_watching(source)
    (tmp_path / "new.json").write_text('{"filesystems": [2]}')
    os.replace(tmp_path / "new.json", path)
    thread.join(10)
    assert got["data"] == b'{"filesystems": [2]}' and got["seconds"] < file_source.POLL_WATCHED
    # Nothing changes: the wait lasts its full time, and other files in the directory only make it look.
    thread, got = _fetch_in_thread(source, 0.6)
    _until_watching(source)
    (tmp_path / "unrelated").write_text("x")
    thread.join(10)
    assert got["data"] == b'{"filesystems": [2]}' and got["seconds"] >= 0.6


def test_the_file_source_polls_where_its_directory_cannot_be_watched(tmp_path, caplog):
    path = tmp_path / "later" / "filesystems.json"
    source = file_source.FileSource(str(path))
    thread, got = _fetch_in_thread(source, 30)
    deadline = time.monotonic() + 5
    while not source.polling and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.polling and source.watch is None and "No such file or directory" in source.refusal
    path.parent.mkdir()
    path.write_text(json.dumps({"filesystems": []}))
    thread.join(10)
    assert got["data"] == b'{"filesystems": []}' and got["seconds"] < 2 * file_source.POLL + 1
    assert not source.polling  # the next wait tries inotify again
