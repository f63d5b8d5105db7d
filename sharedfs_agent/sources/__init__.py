"""Source registry: a literal dict of the built-in sources, plus the `sharedfs_agent.sources.v1` entry points."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping

from ..plugins import load
from .api import ApiPlugin
from .base import Key, Reporter, Source, SourcePlugin
from .file import FilePlugin
from .nova_shares import NovaSharesPlugin

__all__ = ["Source", "SourcePlugin", "Reporter", "Key", "BUILTIN", "ENTRY_POINT_GROUP", "KINDS", "registry", "build"]


ENTRY_POINT_GROUP = "sharedfs_agent.sources.v1"

# Built in by name, not by discovery: what ships is visible here (as mounters/__init__.py).
BUILTIN: Mapping[str, type] = {
    "file": FilePlugin,
    "api": ApiPlugin,
    "nova-shares": NovaSharesPlugin,
}

KINDS = ("str", "path", "url", "seconds")  # what config.py knows how to check
RESERVED = ("agent", "metrics")  # the agent's own sections: no source may be named so


def _check(plugin: Any) -> SourcePlugin:
    if not isinstance(plugin, SourcePlugin) or not plugin.name:
        raise TypeError("not a SourcePlugin with a name")
    for key, spec in plugin.keys.items():
        if not isinstance(spec, Key) or spec.kind not in KINDS:
            raise TypeError(f"key {key!r} is not a Key of kind {', '.join(KINDS)}")
    return plugin


def registry(entry_points: Iterable = None) -> Dict[str, SourcePlugin]:
    """name -> plugin. A third-party plugin that fails to load is logged and skipped; one that
    claims a built-in name, another plugin's name or an agent section is refused."""
    return load("source", ENTRY_POINT_GROUP, BUILTIN, _check, lambda plugin: plugin.name, RESERVED, entry_points)


def build(plugin: SourcePlugin, settings: Mapping[str, Any]) -> Source:
    """The plugin's Source from its section; keys the section does not set take their defaults."""
    return plugin.build({**{key: spec.default for key, spec in plugin.keys.items()}, **settings})
