"""The `file` source: the desired-state JSON document at a local path."""

from __future__ import annotations

from ..errors import SourceUnavailable
from .base import MAX_DOCUMENT_BYTES, Source

__all__ = ["FileSource"]


class FileSource(Source):
    def __init__(self, path: str) -> None:
        self.path = path

    def fetch(self) -> bytes:
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
