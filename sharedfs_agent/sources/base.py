"""The source interface: fetch() returns the desired-state document or raises SourceUnavailable."""

from __future__ import annotations

__all__ = ["Source", "MAX_DOCUMENT_BYTES"]

# Far above any real document (10,000 entries is about 2 MB), far below what would hurt.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


class Source:
    """A place the desired state comes from."""

    def fetch(self, wait: float = 0) -> bytes:
        """The desired-state document, as JSON bytes (parsed and validated by the caller).
        With wait > 0, may hold up to that many seconds until the document changes.
        Unreachable, slow, or garbage: raise SourceUnavailable, never return an empty list
        (that would read as "detach everything")."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for `status` and `check`."""
        raise NotImplementedError
