"""What the serving process adds to a request's ASGI scope for the handlers: the connection's end as a future."""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

__all__ = ["CONNECTION_LOST", "connection_lost"]

# Under this key the server (server.py) puts a callable returning a future that is resolved when
# the client's connection goes: a held long-poll learns that its client left without a task of
# its own reading the request's end (one task per held poll, each cancelled at every change).
CONNECTION_LOST = "sharedfs.connection_lost"


def connection_lost(scope: dict) -> Optional[asyncio.Future]:
    """The future, or None when the server offers none (the handler then reads receive())."""
    factory: Optional[Callable[[], asyncio.Future]] = scope.get(CONNECTION_LOST)
    return factory() if factory is not None else None
