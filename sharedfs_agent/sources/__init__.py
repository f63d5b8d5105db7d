"""Where the desired state comes from: one flat module per source behind sources.base.Source."""

from __future__ import annotations

from typing import Callable, Dict

from .. import identity
from ..config import AgentConfig
from ..errors import ConfigError
from .api import ApiClient, ApiSource, read_token
from .base import Source
from .file import FileSource

__all__ = ["Source", "make_source", "SOURCES"]


def _api(config: AgentConfig) -> ApiSource:
    client = ApiClient(config.api_url, read_token(config.api_token_file), config.api_ca_bundle or None)
    instance_id, project = identity.discover(config)
    return ApiSource(client, project, instance_id)


SOURCES: Dict[str, Callable[[AgentConfig], Source]] = {
    "file": lambda config: FileSource(config.file_path),
    "api": _api,
}


def make_source(config: AgentConfig) -> Source:
    try:
        factory = SOURCES[config.source]
    except KeyError:
        raise ConfigError(f"[agent] source = {config.source!r} is not available in this version") from None
    return factory(config)
