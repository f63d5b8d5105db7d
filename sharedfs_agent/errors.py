"""Agent errors, split by what the caller does next (retry later, give up on one entry, stop)."""

from __future__ import annotations

from typing import Optional

__all__ = [
    "SharedfsError",
    "ConfigError",
    "StateError",
    "SourceUnavailable",
    "InvalidEntry",
    "MountError",
    "TemporaryMountError",
    "BusyError",
    "TimeoutExpired",
    "ClientMissing",
]


class SharedfsError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(SharedfsError):
    """The configuration or command line is wrong: stop, exit 2, a person must fix it."""


class StateError(SharedfsError):
    """A file in state_dir is damaged: stop, exit 2; guessing what we own could unmount the wrong thing."""


class SourceUnavailable(SharedfsError):
    """The desired state could not be fetched or was garbage: keep last-known-good, retry."""

    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


class InvalidEntry(SharedfsError):
    """One desired entry is refused: report it, act on the others."""


class MountError(SharedfsError):
    """A mount or unmount of one filesystem failed; the pass goes on with the others."""


class TemporaryMountError(MountError):
    """Expected to pass later without anyone acting (server down, timeout): retry next pass."""


class BusyError(TemporaryMountError):
    """Unmount refused because the filesystem is in use: report `busy`, retry next pass."""


class TimeoutExpired(TemporaryMountError):
    """A helper ran past its timeout and was killed with its process group."""


class ClientMissing(MountError):
    """The filesystem's client is not installed; the message names the package."""
