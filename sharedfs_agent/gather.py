"""Gather: each source's fetch (or its last-known-good document) validated, then their union as one Desired."""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

from . import cache
from .config import AgentConfig
from .desired import Desired, parse_document
from .errors import SourceUnavailable
from .model import Filesystem, Rejection, Verdict
from .mounters import Mounter
from .records import dataclass, field
from .sources import Source

__all__ = ["Gatherer", "Gathered", "union"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gathered:
    """One pass's desired state and where it came from.

    fresh: every source answered now, so a pass may unmount (one source down, or answering
    from its cache, keeps every mount: "unreachable" is not "nothing attached").
    """

    desired: Desired
    fresh: bool
    answered: FrozenSet[str] = frozenset()  # sources that answered now
    unavailable: Mapping[str, str] = field(default_factory=dict)  # source -> why not
    names: Mapping[str, FrozenSet[str]] = field(default_factory=dict)  # source -> entry names it holds

    def verdicts_of(self, source: str, verdicts: Sequence[Verdict]) -> Tuple[Verdict, ...]:
        """The verdicts of this source's own entries, and of released mounts (names no source
        holds now: the one that had them is not recorded), which its reporter may send back."""
        mine = self.names.get(source, frozenset())
        held = frozenset().union(*self.names.values())
        return tuple(v for v in verdicts if v.name in mine or v.name not in held)


class Gatherer:
    """Fetches every source of one config; keeps each source's last validated document (the
    only state it holds, and it is derived) and its last-known-good copy in state_dir."""

    def __init__(self, config: AgentConfig, sources: Mapping[str, Source], mounters: Mapping[str, Mounter]) -> None:
        self.config = config
        self.sources = sources  # name -> Source, in the config's order
        self.mounters = mounters
        self._validated: Dict[str, Tuple[bytes, Desired]] = {}
        self._united: Optional[Tuple[Tuple[Tuple[str, int], ...], Tuple[Desired, Dict[str, FrozenSet[str]]]]] = None
        self._legacy_dropped = False

    def describe(self) -> str:
        return "; ".join(source.describe() for source in self.sources.values())

    def gather(self, allow_cache: bool = False) -> Gathered:
        """Every source's part, united. Without allow_cache every source must answer now, or
        SourceUnavailable (nothing may change). With it, a source that does not answer gives its
        last-known-good part, or nothing; SourceUnavailable only when no source gave anything."""
        parts: Dict[str, Desired] = {}
        down: Dict[str, SourceUnavailable] = {}
        for name, source in self.sources.items():
            try:
                document = source.fetch()
                parts[name] = self._validate(name, document)
            except SourceUnavailable as e:
                down[name] = e
                saved = self._last_known_good(name) if allow_cache else None
                if saved is not None:
                    log.warning("source %s unavailable (%s); using its last-known-good state", name, e)
                    parts[name] = saved
                continue
            cache.save(self.config.cache_path(name), document)
            self._drop_legacy()
        if down and (not allow_cache or not parts):
            raise _unavailable(down)
        desired, names = self._union(parts)
        return Gathered(desired, not down, frozenset(parts) - set(down),
                        {name: str(e) for name, e in down.items()}, names)  # fmt: skip

    def _validate(self, name: str, document: bytes) -> Desired:
        """JSON bytes -> Desired; the last result per source is kept, as an idle daemon sees one
        document again and again."""
        held = self._validated.get(name)
        if held is not None and held[0] == document:
            return held[1]
        try:
            parsed = json.loads(document)
        except ValueError as e:
            raise SourceUnavailable(f"{self.sources[name].describe()}: not valid JSON: {e}") from None
        desired = parse_document(parsed, self.mounters, self.config)
        self._validated[name] = (document, desired)
        return desired

    def _union(self, parts: Mapping[str, Desired]) -> Tuple[Desired, Dict[str, FrozenSet[str]]]:
        """union(), reused while every part is the same object (an idle daemon's passes)."""
        key = tuple((name, id(part)) for name, part in parts.items())
        if self._united is None or self._united[0] != key:
            self._united = (key, union(parts))
        return self._united[1]

    def _drop_legacy(self) -> None:
        """Once a source's own copy is written, the pre-several-sources copy is not needed."""
        if self._legacy_dropped:
            return
        self._legacy_dropped = True
        try:
            os.unlink(self.config.legacy_cache_path)
        except FileNotFoundError:
            pass

    def _last_known_good(self, name: str) -> Optional[Desired]:
        saved = cache.load(self.config.cache_path(name))
        if saved is None and len(self.sources) == 1:
            # An agent from before several sources kept its one source's document here.
            saved = cache.load(self.config.legacy_cache_path)
        if saved is None:
            return None
        try:
            return self._validate(name, saved)
        except SourceUnavailable as e:
            log.warning("last-known-good state of %s is unusable: %s", name, e)
            return None


def _unavailable(down: Mapping[str, SourceUnavailable]) -> SourceUnavailable:
    if len(down) == 1:
        return next(iter(down.values()))  # as it came, Retry-After included
    return SourceUnavailable("; ".join(f"{name}: {e}" for name, e in down.items()))


def union(parts: Mapping[str, Desired]) -> Tuple[Desired, Dict[str, FrozenSet[str]]]:
    """The sources' parts as one Desired, and each source's entry names. A name or a mount point
    that two sources claim is a conflict: every entry involved is refused, with a reason naming
    the sources, and its mount point is kept out of the plan's hands like any refused entry."""
    by_name: Dict[str, Set[str]] = {}
    by_mount_point: Dict[str, Dict[str, str]] = {}  # mount point -> source -> entry name
    for source, part in parts.items():
        for name, mount_point in _claims(part):
            if name is not None:
                by_name.setdefault(name, set()).add(source)
            if mount_point is not None:
                by_mount_point.setdefault(mount_point, {}).setdefault(source, name or "-")

    def conflict(name: Optional[str], mount_point: Optional[str]) -> str:
        reasons = []
        if name is not None and len(by_name.get(name, ())) > 1:
            reasons.append(f"name {name!r} is claimed by sources {_and(sorted(by_name[name]))}")
        claimants = by_mount_point.get(mount_point, {}) if mount_point else {}
        if len(claimants) > 1:
            who = _and([f"{s} (entry {n!r})" for s, n in sorted(claimants.items())])
            reasons.append(f"mount_point {mount_point!r} is claimed by sources {who}")
        return "; ".join(reasons)

    accepted: List[Filesystem] = []
    refused: List[Rejection] = []
    names: Dict[str, FrozenSet[str]] = {}
    for source, part in parts.items():
        for fs in part.filesystems:
            why = conflict(fs.name, fs.mount_point)
            if why:
                refused.append(Rejection(fs.name, why, fs.mount_point))
            else:
                accepted.append(fs)
        for rejection in part.rejections:
            why = conflict(_named(rejection.name), rejection.mount_point)
            # The same words for every entry in a conflict, so each source hears one state.
            refused.append(Rejection(rejection.name, why, rejection.mount_point) if why else rejection)
        names[source] = frozenset(name for name, _ in _claims(part) if name is not None)
    return Desired(tuple(accepted), tuple(refused)), names


def _claims(part: Desired):
    """(name or None, mount point or None) of every entry, accepted or refused."""
    for fs in part.filesystems:
        yield fs.name, fs.mount_point
    for rejection in part.rejections:
        yield _named(rejection.name), rejection.mount_point


def _named(name: str) -> Optional[str]:
    """A refused entry without a usable name ("#3") claims no name."""
    return None if name.startswith("#") or name == "-" else name


def _and(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)
