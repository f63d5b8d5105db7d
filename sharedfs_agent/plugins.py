"""Entry points of one group, with importlib.metadata imported only when some installed distribution declares that group."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, Collection, Dict, Iterable, Mapping, Optional, Sequence, TypeVar

__all__ = ["entry_points", "declared", "load"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def declared(group: str, path: Optional[Sequence[str]] = None) -> bool:
    """Does any distribution on the path declare entry points in `group`? A scan of the
    `*.dist-info/entry_points.txt` files: importlib.metadata (with zipfile, csv, email and
    inspect) costs an idle daemon some 4 MB, for plugins that are almost never installed."""
    needle = f"[{group}]"
    for directory in sys.path if path is None else path:
        try:
            entries = os.scandir(directory or ".")
        except OSError:
            continue  # a zip file on the path, or a directory that is gone
        with entries:
            for entry in entries:
                if not entry.name.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as f:
                        if needle in f.read():
                            return True
                except OSError:
                    continue
    return False


def entry_points(group: str) -> Iterable:
    """The installed entry points of `group` (importlib.metadata's), or () when none declares it."""
    if not declared(group):
        return ()
    from importlib import metadata

    eps = metadata.entry_points()
    if sys.version_info >= (3, 10):
        return eps.select(group=group)
    return eps.get(group, ())  # pragma: no cover - Python 3.9


def load(kind: str, group: str, builtin: Mapping[str, type], check: Callable[[object], T], name_of: Callable[[T], str],
         reserved: Collection[str] = (), found: Optional[Iterable] = None) -> Dict[str, T]:  # fmt: skip
    """name -> plugin: the built-ins, then the entry points of `group` (or `found`). A third-party
    plugin that fails to load or to pass `check` is logged and skipped; one that claims a name
    already taken (or reserved) is refused: two plugins for one name would be a bug (httpie's
    registry, kubelet's FindPluginBySpec)."""
    plugins: Dict[str, T] = {name: cls() for name, cls in builtin.items()}
    for ep in entry_points(group) if found is None else found:
        try:
            plugin = check(ep.load()())
        except Exception as e:  # a broken plugin must not stop the agent
            log.error("%s plugin %s skipped: %s", kind, ep.name, e)
            continue
        name = name_of(plugin)
        if name in plugins or name in reserved:
            log.error("%s plugin %s skipped: the name %r is already taken", kind, ep.name, name)
            continue
        plugins[name] = plugin
    return plugins
