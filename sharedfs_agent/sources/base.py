"""The source contract: a Source fetches one document; a SourcePlugin declares its config section and builds it."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ..model import Verdict
from ..records import dataclass

__all__ = ["Source", "SourcePlugin", "Reporter", "Key", "MAX_DOCUMENT_BYTES"]

# Far above any real document (10,000 entries is about 2 MB), far below what would hurt.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


class Source:
    """A place the desired state comes from."""

    # Seconds a server is asked to hold fetch(wait) until the document changes; 0: this source
    # does not long-poll, and the daemon re-reads it with wait = resync_interval instead.
    long_poll: float = 0.0

    def fetch(self, wait: float = 0) -> bytes:
        """The desired-state document, as JSON bytes (parsed and validated by the caller).
        With wait > 0, may hold up to that many seconds until the document changes.
        Unreachable, slow, or garbage: raise SourceUnavailable, never return an empty list
        (that would read as "detach everything")."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for `status` and `check`."""
        raise NotImplementedError


class Reporter:
    """Where a source hears back from this instance (the API: addresses and states)."""

    def announce(self) -> None:
        """Tell the source who this instance is; cheap when nothing changed. Called before the
        first fetch, when the source is unavailable, and after every pass."""

    def report(self, verdicts: Sequence[Verdict]) -> None:
        """Each of this source's own entries' state; called only after the source answered now."""


@dataclass(frozen=True)
class Key:
    """One key of a source's config section. kind: "str", "path" (absolute), "url" (http or
    https), "seconds" (0 < s <= 3600). A required key must be set when the source is in use."""

    default: Any = ""
    kind: str = "str"
    required: bool = False


class SourcePlugin:
    """One kind of source, by name. Subclass it, set the attributes, and implement build()."""

    name: str = ""  # the word in `[agent] source`, e.g. "api"
    keys: Mapping[str, Key] = {}  # its section `[<name>]`: every key allowed there, with its default

    def build(self, settings: Mapping[str, Any]) -> Source:
        """A Source from this plugin's section (every declared key present, defaults filled).
        May raise ConfigError (a person must fix something) but never reach the network for
        the document itself: that is fetch()'s job."""
        raise NotImplementedError

    def reporter(self, source: Source) -> Optional[Reporter]:
        """What reports back to this source after each pass; None for a source that listens to nobody."""
        return None
