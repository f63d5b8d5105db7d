"""The serving process: uvicorn with a connection cap, request timeouts, the fd limit, and a shutdown that answers held long-polls."""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import weakref
from typing import Optional

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .scope import CONNECTION_LOST

__all__ = ["Limits", "serve", "raise_fd_limit"]

log = logging.getLogger(__name__)

# File descriptors the process needs besides its connections: the listening socket, the database
# pool (10 + 20 overflow), the LISTEN connection, logs, the agent wheels, gluster's pipes.
FD_HEADROOM = 128


class Limits:
    """What one process accepts: connections held at once, how long a request may take to arrive,
    how long an idle keep-alive connection stays, how long shutdown waits for other requests."""

    def __init__(self, max_connections: int = 4096, request_timeout: float = 10.0, keep_alive: int = 10,
                 shutdown_grace: float = 1.0) -> None:  # fmt: skip
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.keep_alive = keep_alive
        self.shutdown_grace = shutdown_grace


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to `needed` if it is lower; SystemExit if the hard limit forbids it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"sharedfs-api: --max-connections needs {needed} file descriptors but the hard limit "
                             f"is {hard}: lower --max-connections or raise the limit (systemd: LimitNOFILE=)")  # fmt: skip
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        soft = needed
    return soft


_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
            b"connection: close\r\ncontent-length: 72\r\n\r\n"
            b'{"error":{"code":503,"message":"too many connections; try again later"}}')  # fmt: skip


class _OneWrite:
    """A request cycle's transport and send, as uvicorn's cycle sees them: a response's head is
    held from its start message to its first body message and leaves with that body in one
    write (one system call and one segment instead of two: on loopback the kernel's delivery to
    the client is paid by the writer, once per write, 20,000 times in a fan-out)."""

    __slots__ = ("transport", "send", "held")

    def __init__(self, transport, send) -> None:
        # The cycle's send weakly: the cycle holds this object, which must not hold the cycle
        # (a reference cycle would leave every request to the garbage collector to free).
        self.transport, self.send, self.held = transport, weakref.WeakMethod(send), None

    async def __call__(self, message) -> None:
        send = self.send()  # the cycle lives while its task runs the app that calls this
        if message["type"] == "http.response.start":
            self.held = []
            await send(message)
            return
        try:
            await send(message)
        finally:
            self.release()

    def write(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
        else:
            self.transport.write(data)

    def release(self) -> None:
        held, self.held = self.held, None
        if held:
            self.transport.write(b"".join(held))

    def close(self) -> None:
        self.release()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class _Departure:
    """A connection's end as a future, made only when a handler asks (scope.connection_lost). It
    holds nothing of the protocol: the scope holds its `future` method, and the protocol and its
    request cycle hold the scope, so a method of the protocol there would make a reference cycle,
    leaving every finished request to the cycle collector instead of reference counting."""

    __slots__ = ("loop", "lost")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.lost = loop, None

    def future(self) -> asyncio.Future:
        if self.lost is None:
            self.lost = self.loop.create_future()
        return self.lost

    def happened(self) -> None:
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)


def _protocol(limits: Limits) -> type:
    """uvicorn's httptools protocol with what it lacks: a cap on connections (refused at once,
    before they hold a descriptor for long) and a deadline for a whole request to arrive (uvicorn
    times out only idle keep-alive connections, so a client trickling a header byte at a time, or
    sending nothing after connecting, would hold its connection for ever)."""

    class Protocol(HttpToolsProtocol):
        request_deadline: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.departure = _Departure(self.loop)
            if len(self.connections) > limits.max_connections:
                log.warning("refusing a connection: %d open (--max-connections)", len(self.connections) - 1)
                transport.write(_REFUSED)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self.request_deadline = self.loop.call_later(limits.request_timeout, self._request_too_slow)

        def _disarm(self) -> None:
            if self.request_deadline is not None:
                self.request_deadline.cancel()
                self.request_deadline = None

        def _request_too_slow(self) -> None:
            self.request_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_headers_complete(self) -> None:
            self.scope[CONNECTION_LOST] = self.departure.future  # the scope uvicorn hands to the app next
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle.transport is self.transport:  # the new request's (not one refused before it had one)
                # Set before its task first runs: run_asgi hands the app `self.send`.
                cycle.transport = cycle.send = _OneWrite(self.transport, cycle.send)

        def on_message_complete(self) -> None:
            self._disarm()  # the request is in: from here the handler decides how long it takes
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request, if any, must arrive in time too

        def connection_lost(self, exc) -> None:
            self._disarm()
            self.departure.happened()
            super().connection_lost(exc)

    return Protocol


class _Server(uvicorn.Server):
    """Shutdown first answers every held long-poll (the hub's close), then does uvicorn's: stop
    accepting, close idle connections, wait for the rest (at most the shutdown grace)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def on_tick(self, counter: int) -> bool:
        # uvicorn ticks every 0.1 s: how late it runs is the event loop's lag (load shedding, shed.py).
        lag = getattr(self.app.state, "loop_lag", None)
        if lag is not None:
            lag.tick()
        return await super().on_tick(counter)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        # What startup made (modules, the app, the database's metadata) lives as long as the
        # process: out of the collector's sight, so a full collection has that much less to scan.
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets=None) -> None:
        self.app.state.hub.close()
        await super().shutdown(sockets)


def serve(app: FastAPI, host: str, port: int, limits: Limits, log_level: str = "info",
          access_log: bool = False) -> None:  # fmt: skip
    raise_fd_limit(limits.max_connections + FD_HEADROOM)
    # With 10,000 polls held a full collection scans some 870,000 objects and stops the event
    # loop for about 0.7 s; with the default thresholds one fell inside fan-outs. A finished
    # request leaves no reference cycle (_Departure; tests/unit/test_server_protocol.py), so
    # reference counting frees it and rare collections keep no memory: the young generation is
    # collected every 50,000 new objects instead of 700, the oldest almost never
    # (docs/benchmarks.md, "The cycle collector").
    gc.set_threshold(50_000, 20, 100)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            http=_protocol(limits), timeout_keep_alive=limits.keep_alive,
                            timeout_graceful_shutdown=limits.shutdown_grace, backlog=8192)  # fmt: skip
    _Server(config, app).run()
