"""Source plugins: the registry, the sections they declare, several sources united (conflicts), per-source last-known-good."""

from __future__ import annotations

import json
import os
import threading
from types import SimpleNamespace

import pytest

from sharedfs_agent import cache, sources
from sharedfs_agent.config import AgentConfig, load
from sharedfs_agent.daemon import Watcher
from sharedfs_agent.errors import ConfigError, SourceUnavailable
from sharedfs_agent.gather import Gatherer
from sharedfs_agent.model import State, Verdict
from sharedfs_agent.mounters import registry as mounter_registry
from sharedfs_agent.sources import Key, Source, SourcePlugin
from sharedfs_agent.sources.api import ApiPlugin, ApiReporter, ApiSource
from sharedfs_agent.sources.file import FileSource

MOUNTERS = mounter_registry(entry_points=())


class Static(SourcePlugin):
    """A third-party source: a fixed document, with a section of its own."""

    name = "static"
    keys = {"document": Key('{"filesystems": []}'), "hold": Key(5.0, "seconds"), "dir": Key("", "path")}

    def build(self, settings):
        source = SimpleNamespace(fetch=lambda wait=0: settings["document"].encode(), describe=lambda: "static")
        source.long_poll = settings["hold"]
        return source


def entry_point(name, load_result):
    return SimpleNamespace(name=name, load=lambda: load_result)


# -- the registry ---------------------------------------------------------------------------


def test_registry_adds_a_plugin_and_skips_broken_or_claiming_ones(caplog):
    def broken():
        raise ImportError("no module named static_client")

    class Claimer(SourcePlugin):
        name = "api"

    class Agent(SourcePlugin):
        name = "agent"  # would take over the agent's own section

    class BadKey(SourcePlugin):
        name = "badkey"
        keys = {"port": Key(1, "integer")}

    eps = [entry_point("static", Static), entry_point("broken", broken), entry_point("claimer", Claimer),
           entry_point("agentish", Agent), entry_point("badkey", BadKey), entry_point("junk", lambda: object)]  # fmt: skip
    plugins = sources.registry(entry_points=eps)
    assert set(plugins) == {"file", "api", "static"}
    assert isinstance(plugins["api"], ApiPlugin)
    for name in ("broken", "claimer", "agentish", "badkey", "junk"):
        assert f"source plugin {name} skipped" in caplog.text
    assert "kind str, path, url, seconds" in caplog.text


def test_builtin_plugins_declare_sections_long_poll_and_reporter(tmp_path):
    plugins = sources.registry(entry_points=())
    file_source = sources.build(plugins["file"], {})
    assert isinstance(file_source, FileSource) and file_source.path == "/etc/sharedfs-agent/filesystems.json"
    assert file_source.long_poll == 0 and plugins["file"].reporter(file_source) is None
    token = tmp_path / "token"
    token.write_text("tok\n")
    os.chmod(token, 0o600)
    api = sources.build(plugins["api"], {"url": "http://127.0.0.1:9", "token_file": str(token), "wait": 25.0,
                                         "instance_id": "vm1", "project": "p1"})  # fmt: skip
    assert isinstance(api, ApiSource) and api.long_poll == 25.0 and api.path.endswith("/p1/os-instances/vm1/filesystems")
    reporter = plugins["api"].reporter(api)
    assert isinstance(reporter, ApiReporter) and reporter.base == "/v1.1/p1/os-instances/vm1"


# -- config sections declared by sources ----------------------------------------------------


def write(tmp_path, text):
    path = tmp_path / "agent.conf"
    path.write_text(text)
    return str(path)


def test_a_plugin_brings_its_section_and_several_sources_are_named(tmp_path):
    plugins = sources.registry(entry_points=[entry_point("static", Static)])
    cfg = load(write(tmp_path, "[agent]\nsource = file, static api\n[static]\nhold = 7\n[api]\nurl = https://a\n"), plugins)
    assert cfg.sources == ("file", "static", "api")
    assert cfg.source_settings["static"] == {"document": '{"filesystems": []}', "hold": 7.0, "dir": ""}
    assert cfg.source_settings["file"]["path"] == "/etc/sharedfs-agent/filesystems.json"  # defaults filled
    with pytest.raises(ConfigError, match=r"unknown key 'holdd' in \[static\]"):
        load(write(tmp_path, "[static]\nholdd = 7\n"), plugins)
    with pytest.raises(ConfigError, match=r"\[static\] dir = 'rel': must be an absolute path"):
        load(write(tmp_path, "[static]\ndir = rel\n"), plugins)
    # Without the plugin installed its section is a typo like any other.
    with pytest.raises(ConfigError, match=r"unknown section \[static\]"):
        load(write(tmp_path, "[static]\nhold = 7\n"), sources.registry(entry_points=()))


def test_cloud_init_config_stays_valid(tmp_path):
    """The lines sharedfs_api/cloudinit/user-data.yaml.in writes."""
    text = "[agent]\nsource = api\n[api]\nurl = https://api:8776\ntoken_file = /etc/sharedfs-agent/token\n"
    cfg = load(write(tmp_path, text), sources.registry(entry_points=()))
    assert cfg.sources == ("api",) and cfg.source_settings["api"]["wait"] == 60.0


# -- several sources: union and conflicts ----------------------------------------------------


@pytest.fixture
def two(tmp_path):
    root = tmp_path / "mnt"
    root.mkdir()
    config = AgentConfig(state_dir=str(tmp_path / "state"), allowed_roots=(str(root),))
    os.makedirs(config.state_dir)
    docs = {name: tmp_path / f"{name}.json" for name in ("api", "file")}

    def desire(source, *entries):
        docs[source].write_text(json.dumps({"filesystems": [
            {"name": name, "fs_type": "glusterfs", "export": f"h:/{name}", "mount_point": f"{root}/{where}"}
            for name, where in entries]}))  # fmt: skip

    gatherer = Gatherer(config, {name: FileSource(str(path)) for name, path in docs.items()}, MOUNTERS)
    return gatherer, desire, docs, root


def test_union_of_two_sources(two):
    gatherer, desire, docs, root = two
    desire("api", ("home", "home"))
    desire("file", ("scratch", "scratch"))
    gathered = gatherer.gather()
    assert gathered.fresh and gathered.answered == {"api", "file"}
    assert [fs.name for fs in gathered.desired.filesystems] == ["home", "scratch"]
    assert gathered.names == {"api": {"home"}, "file": {"scratch"}}


def test_a_name_or_mount_point_claimed_by_two_sources_refuses_both(two):
    gatherer, desire, docs, root = two
    desire("api", ("home", "home"), ("data", "data"), ("keep", "keep"))
    desire("file", ("home", "elsewhere"), ("scratch", "data"))
    desired = gatherer.gather().desired
    assert [fs.name for fs in desired.filesystems] == ["keep"]
    refused = {(r.name, r.mount_point): r.reason for r in desired.rejections}
    assert refused == {
        ("home", f"{root}/home"): "name 'home' is claimed by sources api and file",
        ("home", f"{root}/elsewhere"): "name 'home' is claimed by sources api and file",
        ("data", f"{root}/data"): f"mount_point '{root}/data' is claimed by sources api (entry 'data') and file (entry 'scratch')",
        ("scratch", f"{root}/data"): f"mount_point '{root}/data' is claimed by sources api (entry 'data') and file (entry 'scratch')",
    }


def test_each_reporter_hears_its_own_entries_and_released_ones(two):
    gatherer, desire, docs, root = two
    desire("api", ("home", "home"))
    desire("file", ("scratch", "scratch"))
    gathered = gatherer.gather()
    verdicts = [Verdict("home", "/m/home", State.MOUNTED), Verdict("scratch", "/m/s", State.MOUNTED),
                Verdict("gone", "/m/gone", State.UNMOUNTED)]  # fmt: skip
    assert [v.name for v in gathered.verdicts_of("api", verdicts)] == ["home", "gone"]
    assert [v.name for v in gathered.verdicts_of("file", verdicts)] == ["scratch", "gone"]


# -- per-source last-known-good ----------------------------------------------------------------


def test_one_source_down_keeps_its_own_last_known_good_part_only(two):
    gatherer, desire, docs, root = two
    desire("api", ("home", "home"))
    desire("file", ("scratch", "scratch"))
    gatherer.gather()
    assert cache.load(gatherer.config.cache_path("api")) == docs["api"].read_bytes()
    docs["api"].write_text("<html>proxy error</html>")
    desire("file", ("other", "other"))  # the source that answers is taken as it is now
    with pytest.raises(SourceUnavailable, match="not valid JSON"):
        gatherer.gather()  # `once`: every source must answer now
    gathered = gatherer.gather(allow_cache=True)
    assert not gathered.fresh and gathered.answered == {"file"} and set(gathered.unavailable) == {"api"}
    assert [fs.name for fs in gathered.desired.filesystems] == ["home", "other"]


def test_a_source_down_without_last_known_good_gives_nothing_and_the_pass_is_not_fresh(two):
    gatherer, desire, docs, root = two
    desire("file", ("scratch", "scratch"))
    gathered = gatherer.gather(allow_cache=True)  # api.json was never written
    assert not gathered.fresh and [fs.name for fs in gathered.desired.filesystems] == ["scratch"]
    docs["file"].unlink()
    assert gatherer.gather(allow_cache=True).desired == gathered.desired  # its own copy, kept
    os.unlink(gatherer.config.cache_path("file"))
    with pytest.raises(SourceUnavailable, match="api: cannot read .*; file: cannot read"):
        gatherer.gather(allow_cache=True)  # nobody gave anything: nothing may change


def test_the_single_cache_file_of_an_older_agent_is_read_then_dropped(tmp_path):
    root = tmp_path / "mnt"
    config = AgentConfig(state_dir=str(tmp_path / "state"), allowed_roots=(str(root),))
    os.makedirs(config.state_dir)
    old = json.dumps({"filesystems": [{"name": "home", "fs_type": "glusterfs", "export": "h:/v",
                                       "mount_point": f"{root}/home"}]}).encode()  # fmt: skip
    cache.save(config.legacy_cache_path, old)
    doc = tmp_path / "fs.json"
    gatherer = Gatherer(config, {"file": FileSource(str(doc))}, MOUNTERS)
    gathered = gatherer.gather(allow_cache=True)
    assert [fs.name for fs in gathered.desired.filesystems] == ["home"] and not gathered.fresh
    # With several sources the old file is nobody's: it is not read.
    both = Gatherer(config, {"file": FileSource(str(doc)), "api": FileSource(str(doc))}, MOUNTERS)
    with pytest.raises(SourceUnavailable):
        both.gather(allow_cache=True)
    doc.write_text('{"filesystems": []}')
    assert gatherer.gather(allow_cache=True).fresh
    assert not os.path.exists(config.legacy_cache_path) and cache.load(config.cache_path("file")) is not None


# -- the daemon watches every source ---------------------------------------------------------------


def test_one_watcher_per_source_wakes_the_one_loop(tmp_path):
    stopping, changed = threading.Event(), threading.Event()
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        path.write_text('{"filesystems": []}')
    watchers = [Watcher(FileSource(str(path)), 30.0, stopping, changed) for path in paths]
    try:
        for watcher in watchers:
            watcher.start()
        assert all(watcher.heard.wait(5) for watcher in watchers)
        changed.clear()
        paths[1].write_text('{"filesystems": [] }')
        assert changed.wait(5)  # the file's stamp is watched: seen within about half a second
        assert watchers[1].fetch() == b'{"filesystems": [] }'
    finally:
        stopping.set()


def test_the_first_refusal_wakes_the_loop_and_announce_comes_first():
    """At boot with the source down the daemon must hear of it at once, not at the next resync."""
    calls = []

    class Down(Source):
        def fetch(self, wait: float = 0) -> bytes:
            calls.append("fetch")
            raise SourceUnavailable("connection refused")

        def describe(self) -> str:
            return "down"

    stopping, changed = threading.Event(), threading.Event()
    watcher = Watcher(Down(), 30.0, stopping, changed, announce=lambda: calls.append("announce"))
    try:
        watcher.start()
        assert changed.wait(5) and watcher.heard.is_set()
        assert calls[:2] == ["announce", "fetch"]
        with pytest.raises(SourceUnavailable, match="connection refused"):
            watcher.fetch()
    finally:
        stopping.set()
