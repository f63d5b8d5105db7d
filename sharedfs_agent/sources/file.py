"""The `file` source: the desired-state JSON document at a local path."""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Optional, Tuple

from ..errors import SourceUnavailable
from .base import MAX_DOCUMENT_BYTES, Key, Source, SourcePlugin

__all__ = ["FileSource", "FilePlugin"]


class FileSource(Source):
    """Not long-polled: the daemon asks with wait = resync_interval, and fetch() watches the
    file's stamp meanwhile, so a change is seen within half a second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: Optional[Tuple[int, int, int]] = None  # (inode, size, mtime) of the last read

    def _stamp(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def fetch(self, wait: float = 0) -> bytes:
        # Waiting on a file is polling its stamp: cheap, and it works on every filesystem.
        deadline = time.monotonic() + wait
        while wait > 0 and self._stamp() == self.seen and time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        self.seen = self._stamp()
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as e:
            raise SourceUnavailable(f"cannot read {self.path}: {e.strerror}") from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise SourceUnavailable(f"{self.path} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return data

    def describe(self) -> str:
        return f"file {self.path}"


class FilePlugin(SourcePlugin):
    name = "file"
    keys = {"path": Key("/etc/sharedfs-agent/filesystems.json", "path")}

    def build(self, settings: Mapping[str, Any]) -> FileSource:
        return FileSource(settings["path"])
