"""Enrollment by Nova's vendordata: the api source finds its API, token, CA and identity in vendor_data2.json
served by a loopback metadata server (or a config drive), keeps them for a restart, and refuses hostile values."""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import threading

import pytest

from sharedfs_agent import config as config_mod
from sharedfs_agent import sources
from sharedfs_agent.errors import ConfigError
from sharedfs_agent.sources.api import ApiPlugin

TOKEN = "vd-" + "A" * 40
# A self-signed certificate made for these tests (openssl req -x509, EC P-256; its key was thrown away).
CA = """\
-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUE6yIApcOnRbF2VaCgRNX2DX9ltkwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2hhcmVkZnMgdGVzdCBDQTAgFw0yNjExMjYxNDEwMzVaGA8y
MTI2MTEwMjE0MTAzNVowGzEZMBcGA1UEAwwQc2hhcmVkZnMgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABKbwsXkLBpkGotxlOHYqb5oIf1PhfQj99dFB
OwEhd7ZWapiiJgrg+c9peb0bESiArlP7B8SGu0UIH821Sku4gRajUzBRMB0GA1Ud
DgQWBBSWvtCj6p2PgoEeNUCR5tdH6RkTwDAfBgNVHSMEGDAWgBSWvtCj6p2PgoEe
NUCR5tdH6RkTwDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDc
0KbElWQ4q10jwGWA8YRNMj9lQbhnHt8K6j2+SEnlcAIgRgrRc/arp9ZDBJJR57Bz
s5Y7sD4EFSPHTidOOk2VXG8=
-----END CERTIFICATE-----
"""
VENDOR_DATA = "/openstack/latest/vendor_data2.json"
META = "/openstack/latest/meta_data.json"


def answer(**over):
    """What POST /v1.1/vendordata answers (docs/api.md), as Nova relays it."""
    return {"api_url": "https://sharedfs.example:8776", "token": TOKEN, "project": "p1", "instance_id": "vm-7",
            "ca": CA, **over}  # fmt: skip


class Metadata(http.server.BaseHTTPRequestHandler):
    """A metadata service: path -> JSON document; anything else 404. Counts what was asked."""

    files: dict = {}
    asked: list = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).asked.append(self.path)
        document = type(self).files.get(self.path)
        body = b"" if document is None else (document if isinstance(document, bytes) else json.dumps(document).encode())
        self.send_response(404 if document is None else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metadata():
    Metadata.files, Metadata.asked = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused at once


def settings(tmp_path, **given):
    """The [api] section with every default, pointed away from the host's own files."""
    base = {"token_file": str(tmp_path / "etc" / "token"), "instance_data": str(tmp_path / "no-instance-data"),
            "config_drive_dir": str(tmp_path / "no-config-drive")}  # fmt: skip
    return {**{key: spec.default for key, spec in ApiPlugin.keys.items()}, **base, **given}


def test_vendordata_alone_gives_url_token_ca_and_identity(tmp_path, metadata):
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer(), "other-provider": {"x": 1}},
                      META: {"uuid": "from-meta-data", "project_id": "other"}}  # fmt: skip
    source = ApiPlugin().build(settings(tmp_path, metadata_url=metadata))
    assert (source.client.url, source.client.token) == ("https://sharedfs.example:8776", TOKEN)
    assert (source.instance_id, source.project) == ("vm-7", "p1")
    assert Metadata.asked == [VENDOR_DATA]  # before anything else, and nothing else was needed
    token_file = tmp_path / "etc" / "token"
    assert token_file.read_text() == TOKEN + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (tmp_path / "etc" / "vendordata-ca.pem").read_text() == CA
    assert TOKEN not in (tmp_path / "etc" / "vendordata.json").read_text()


def test_a_restart_without_the_metadata_service_uses_what_was_kept(tmp_path, metadata, nothing_listens):
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer()}}
    ApiPlugin().build(settings(tmp_path, metadata_url=metadata))
    source = ApiPlugin().build(settings(tmp_path, metadata_url=nothing_listens))
    assert (source.client.url, source.client.token) == ("https://sharedfs.example:8776", TOKEN)
    assert (source.instance_id, source.project) == ("vm-7", "p1")
    # A later boot's fresh token replaces the kept one.
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer(token="B" * 43)}}
    assert ApiPlugin().build(settings(tmp_path, metadata_url=metadata)).client.token == "B" * 43
    assert (tmp_path / "etc" / "token").read_text() == "B" * 43 + "\n"


def test_config_keys_win_and_the_provider_name_is_a_key(tmp_path, metadata):
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer(api_url="https://wrong:1"),
                                    "cloudfs": answer(instance_id="vm-8")}}  # fmt: skip
    source = ApiPlugin().build(settings(tmp_path, metadata_url=metadata, vendordata_provider="cloudfs",
                                        url="https://configured:8776", project="p9"))  # fmt: skip
    assert (source.client.url, source.client.token) == ("https://configured:8776", TOKEN)
    assert (source.instance_id, source.project) == ("vm-8", "p9")


def test_a_config_that_names_everything_does_not_ask(tmp_path, metadata):
    token_file = tmp_path / "etc" / "token"
    token_file.parent.mkdir()
    token_file.write_text("configured-token-0123456789\n")
    os.chmod(token_file, 0o600)
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer()}}
    source = ApiPlugin().build(settings(tmp_path, metadata_url=metadata, url="https://a:1", instance_id="i",
                                        project="p"))  # fmt: skip
    assert source.client.token == "configured-token-0123456789" and Metadata.asked == []


def test_the_config_drive_when_the_metadata_service_has_none(tmp_path, metadata):
    drive = tmp_path / "drive" / "openstack" / "latest"
    drive.mkdir(parents=True)
    (drive / "vendor_data2.json").write_text(json.dumps({"sharedfs": answer(instance_id="vm-drive", ca=None)}))
    source = ApiPlugin().build(settings(tmp_path, metadata_url=metadata, config_drive_dir=str(tmp_path / "drive")))
    assert (source.instance_id, source.client.token) == ("vm-drive", TOKEN)
    assert VENDOR_DATA in Metadata.asked
    assert not (tmp_path / "etc" / "vendordata-ca.pem").exists()


@pytest.mark.parametrize(
    "over",
    [
        {"api_url": "file:///etc/passwd"},
        {"api_url": "https://x\n[agent]"},
        {"api_url": None},
        {"token": "two words but long enough"},
        {"token": "short"},
        {"token": 12345678901234567890},
        {"project": "../etc"},
        {"instance_id": "vm 1"},
        {"instance_id": ""},
        {"ca": "not a certificate"},
        {"ca": ["-----BEGIN CERTIFICATE-----"]},
        {"ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},  # the form, not a certificate
    ],
)
def test_hostile_values_refuse_the_whole_entry(tmp_path, metadata, over, caplog):
    Metadata.files = {VENDOR_DATA: {"sharedfs": answer(**over)}}
    with pytest.raises(ConfigError, match=r"needs \[api\] url"):
        ApiPlugin().build(settings(tmp_path, metadata_url=metadata))
    assert not (tmp_path / "etc").exists()  # nothing of it was kept
    assert "refused" in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize("document", [b"<html>not json</html>", b"[]", b'{"sharedfs": "x"}'])
def test_garbage_vendor_data_is_no_enrollment(tmp_path, metadata, document):
    Metadata.files = {VENDOR_DATA: document}
    with pytest.raises(ConfigError, match=r"needs \[api\] url"):
        ApiPlugin().build(settings(tmp_path, metadata_url=metadata))


def test_without_url_or_vendordata_the_config_error_names_the_key(tmp_path, nothing_listens):
    """Formerly a load-time error (url was required); now url may come from vendordata."""
    path = tmp_path / "agent.conf"
    path.write_text(f"[agent]\nsource = api\n[api]\nmetadata_url = {nothing_listens}\n"
                    f"token_file = {tmp_path}/token\nconfig_drive_dir = {tmp_path}/none\n")  # fmt: skip
    cfg = config_mod.load(str(path), sources.registry())
    with pytest.raises(ConfigError) as e:
        sources.build(sources.registry()["api"], cfg.source_settings["api"])
    assert "[agent] source = api needs [api] url" in str(e.value)
