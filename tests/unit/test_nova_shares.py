"""The nova-shares source: Nova's share devices in meta_data.json -> virtiofs entries, validated like any document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sharedfs_agent import sources
from sharedfs_agent.config import AgentConfig, load
from sharedfs_agent.desired import parse_document
from sharedfs_agent.errors import SourceUnavailable
from sharedfs_agent.mounters import registry as mounter_registry
from sharedfs_agent.sources.nova_shares import NovaSharesSource, shares_document

MOUNTERS = mounter_registry(entry_points=())
NOVA = Path(__file__).resolve().parents[1] / "fixtures" / "nova"
META = json.loads((NOVA / "meta_data_with_share.json").read_text())
CONFIG = AgentConfig(allowed_roots=("/mnt",))


def source(service, drive=None, **kw):
    """A source whose metadata service answers from the list `service` (None: silent), one read each."""
    answers = list(service)
    settings = dict(metadata_url="http://169.254.169.254", config_drive_dir="", mount_root="/mnt/shares",
                    mount_options="", poll_interval=0.01)  # fmt: skip
    settings.update(kw)
    return NovaSharesSource(**settings, read_service=lambda url: answers.pop(0) if len(answers) > 1 else answers[0],
                            read_drive=lambda directory: drive)  # fmt: skip


def desired(document: bytes):
    return parse_document(json.loads(document), MOUNTERS, CONFIG)


def with_devices(*devices):
    return {**META, "devices": list(devices)}


def share(tag, share_id="3cdf5132-64f2-4584-876a-bd296ae7eabd"):
    return {"type": "share", "share_id": share_id, "tag": tag, "bus": "none", "address": "none"}


def test_the_share_device_of_novas_format_becomes_a_virtiofs_mount_and_disks_and_nics_are_ignored():
    request = json.loads((NOVA / "api_samples" / "server-shares-create-req.json").read_text())["share"]
    result = desired(source([META]).fetch())
    (fs,) = result.filesystems
    assert not result.rejections
    assert (fs.name, fs.fs_type, fs.export, fs.mount_point) == (request["tag"], "virtiofs", request["tag"],
                                                                "/mnt/shares/my-share")  # fmt: skip


def test_root_and_options_come_from_the_config():
    doc = source([META], mount_root="/mnt/nova/", mount_options="ro,dax=always").fetch()
    (fs,) = desired(doc).filesystems
    assert fs.mount_point == "/mnt/nova/my-share"
    assert fs.access.value == "ro" and "dax=always" in fs.options


@pytest.mark.parametrize("tag", ["../../etc", "a b", "x" * 40, "-leading", "tag\n", 7, None, ""])
def test_a_hostile_tag_is_refused_alone(tag):
    doc = source([with_devices(share(tag), share("good"))]).fetch()
    result = desired(doc)
    assert [fs.name for fs in result.filesystems] == ["good"]
    assert len(result.rejections) == 1


def test_no_share_devices_is_an_empty_document_but_garbage_is_unavailable():
    assert json.loads(source([with_devices()]).fetch()) == {"filesystems": []}
    assert json.loads(source([{k: v for k, v in META.items() if k != "devices"}]).fetch()) == {"filesystems": []}
    with pytest.raises(SourceUnavailable):
        source([{"devices": [share("a")]}]).fetch()  # not Nova's: no instance uuid
    with pytest.raises(SourceUnavailable):
        source([{**META, "devices": "share"}]).fetch()


def test_config_drive_only_until_the_service_first_answers():
    """Nova never refreshes a config drive: once the service answered, its silence is unavailable
    (last-known-good stands), never the drive's boot-time list (which would unmount newer shares)."""
    drive = with_devices(share("at-boot"))
    booting = source([None], drive=drive)
    assert [e["name"] for e in json.loads(booting.fetch())["filesystems"]] == ["at-boot"]
    later = source([with_devices(share("at-boot"), share("attached-later")), None], drive=drive)
    assert len(json.loads(later.fetch())["filesystems"]) == 2
    with pytest.raises(SourceUnavailable, match="does not answer"):
        later.fetch()
    with pytest.raises(SourceUnavailable, match="nor a config drive"):
        source([None], drive=None).fetch()


def test_fetch_with_wait_returns_when_the_shares_change():
    changing = source([with_devices(share("a")), with_devices(share("a")), with_devices(share("a"), share("b"))])
    first = changing.fetch()
    second = changing.fetch(wait=5)
    assert first != second and len(json.loads(second)["filesystems"]) == 2


def test_it_is_a_builtin_source_beside_api(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("[agent]\nsource = file, nova-shares\n[nova-shares]\nmetadata_url = http://10.0.2.100\n"
                    "mount_root = /mnt/shares\nmount_options = ro\npoll_interval = 5\n")  # fmt: skip
    plugins = sources.registry(entry_points=())
    config = load(str(conf), plugins)
    assert config.sources == ("file", "nova-shares")
    built = sources.build(plugins["nova-shares"], config.source_settings["nova-shares"])
    assert built.describe() == "nova-shares from http://10.0.2.100" and built.long_poll == 0
    assert shares_document(META, "/mnt/x", "")["filesystems"][0]["mount_point"] == "/mnt/x/my-share"
