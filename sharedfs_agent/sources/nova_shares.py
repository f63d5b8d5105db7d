"""The `nova-shares` source: Manila shares Nova attached as virtiofs devices, from the instance's meta_data.json."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from .. import identity
from ..errors import SourceUnavailable
from .base import Key, Source, SourcePlugin

__all__ = ["NovaSharesSource", "NovaSharesPlugin", "shares_document"]

# Nova (microversion 2.97) lists an attached share in meta_data.json's `devices` as
# {"type": "share", "share_id": …, "tag": …, "bus": "none", "address": "none"}; no guest software
# mounts it (cloud-init has no code for it), so this source turns each one into an entry.
SHARE_DEVICE = "share"


def shares_document(meta: Mapping[str, Any], mount_root: str, mount_options: str) -> Dict[str, List[dict]]:
    """meta_data.json -> a desired-state document: one virtiofs entry per share device, named and
    mounted by its tag. Nothing is checked here: desired.py refuses a hostile tag like any entry."""
    devices = meta.get("devices") or []
    if not isinstance(devices, list):
        raise SourceUnavailable('meta_data.json: "devices" is not a list')
    entries = []
    for device in devices:
        if not isinstance(device, dict) or device.get("type") != SHARE_DEVICE:
            continue  # disks and NICs: not ours
        tag = device.get("tag")
        entries.append({
            "name": tag,
            "fs_type": "virtiofs",
            "export": tag,
            "mount_point": f"{mount_root.rstrip('/')}/{tag}" if isinstance(tag, str) else None,
            "mount_options": mount_options,
            "share_id": device.get("share_id"),  # ignored by validation; kept for `plan --json` readers
        })  # fmt: skip
    return {"filesystems": entries}


class NovaSharesSource(Source):
    """Not long-polled: fetch(wait) re-reads the metadata service every poll_interval until the
    share devices change or wait runs out.

    The metadata service is the truth; a config drive is read only while the service has never
    answered since the agent started, because Nova writes the drive once at boot and never
    refreshes it: once the service answered, its silence is *unavailable* (the last-known-good
    state stands), never the drive's stale list, which would unmount shares attached since."""

    def __init__(self, metadata_url: str, config_drive_dir: str, mount_root: str, mount_options: str,
                 poll_interval: float,
                 read_service: Callable[[str], Optional[dict]] = identity.metadata_service,
                 read_drive: Callable[[str], Optional[dict]] = identity.config_drive) -> None:  # fmt: skip
        self.metadata_url, self.config_drive_dir = metadata_url, config_drive_dir
        self.mount_root, self.mount_options, self.poll_interval = mount_root, mount_options, poll_interval
        self.read_service, self.read_drive = read_service, read_drive
        self.service_answered = False
        self.drive: Optional[dict] = None  # the config drive never changes: read it once
        self.last: Optional[bytes] = None

    def _meta(self) -> dict:
        meta = self.read_service(self.metadata_url)
        if meta is not None:
            self.service_answered = True
            return meta
        if self.service_answered:
            raise SourceUnavailable(f"metadata service {self.metadata_url} does not answer")
        if self.drive is None:
            self.drive = self.read_drive(self.config_drive_dir)
        if self.drive is None:
            raise SourceUnavailable(f"neither the metadata service {self.metadata_url} nor a config drive answers")
        return self.drive

    def _read(self) -> bytes:
        meta = self._meta()
        if not isinstance(meta.get("uuid"), str):
            raise SourceUnavailable("meta_data.json has no instance uuid: not Nova's")
        document = shares_document(meta, self.mount_root, self.mount_options)
        return json.dumps(document, sort_keys=True).encode()

    def fetch(self, wait: float = 0) -> bytes:
        deadline = time.monotonic() + wait
        document = self._read()
        while wait > 0 and document == self.last and time.monotonic() < deadline:
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
            document = self._read()
        self.last = document
        return document

    def describe(self) -> str:
        return f"nova-shares from {self.metadata_url}"


class NovaSharesPlugin(SourcePlugin):
    name = "nova-shares"
    keys = {
        "metadata_url": Key("http://169.254.169.254", "url"),
        "config_drive_dir": Key(""),  # a mounted config drive; empty: look for the label config-2
        "mount_root": Key("/mnt/shares", "path"),  # each share on mount_root/<tag>; must be in allowed_roots
        "mount_options": Key(""),  # comma-separated, for every share (e.g. "ro" or "dax=always")
        "poll_interval": Key(30.0, "seconds"),  # how often the metadata service is asked for changes
    }

    def build(self, settings: Mapping[str, Any]) -> NovaSharesSource:
        return NovaSharesSource(settings["metadata_url"], settings["config_drive_dir"], settings["mount_root"],
                                settings["mount_options"], settings["poll_interval"])  # fmt: skip
