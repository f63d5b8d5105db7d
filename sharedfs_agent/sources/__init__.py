"""Where the desired state comes from: one flat module per source behind sources.base.Source."""

from __future__ import annotations

from typing import Callable, Dict

from ..config import AgentConfig
from ..errors import ConfigError
from .base import Source
from .file import FileSource

__all__ = ["Source", "make_source", "SOURCES"]

SOURCES: Dict[str, Callable[[AgentConfig], Source]] = {
    "file": lambda config: FileSource(config.file_path),
}


def make_source(config: AgentConfig) -> Source:
    try:
        factory = SOURCES[config.source]
    except KeyError:
        raise ConfigError(f"[agent] source = {config.source!r} is not available in this version") from None
    return factory(config)
