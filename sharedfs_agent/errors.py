"""Agent errors, split by what the caller does next, and outcome(): the one place that says what."""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional

from .model import State

__all__ = [
    "outcome",
    "Outcome",
    "ExitStatus",
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
    "LockHeld",
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
    """The filesystem's client is not installed; the message names the package. No mount is tried
    until a pass finds it installed (a person installs it, or the config names another type)."""


class LockHeld(SharedfsError):
    """Another pass (`once`, `release`, the daemon) holds the pass lock: nothing was done, try later."""


class ExitStatus(enum.IntEnum):
    """What `sharedfs-agent once` (and the other commands) exit with."""

    CONVERGED = 0
    SOME_FAILED = 1  # some filesystem failed; the others were done
    USAGE = 2  # usage or config error, or a damaged state file
    SOURCE_UNAVAILABLE = 3  # nothing was changed
    LOCKED = 4  # another pass holds the lock; nothing was done


class Outcome(NamedTuple):
    """What an exception means for the one who caught it."""

    state: State  # the filesystem's reported state, when it happened to one
    detail: str  # one line for the status file, the log, the API
    retry: bool  # will the same pass, run again unchanged, maybe succeed (no person needed)?
    exit_status: ExitStatus  # what the CLI exits with
    expected: bool  # raised on purpose (one log line); False: a bug, log the traceback


def outcome(error: BaseException) -> Outcome:
    """The one mapping from an exception to what apply, the daemon and the CLI do next."""
    detail = str(error)
    if isinstance(error, BusyError):
        return Outcome(State.BUSY, detail, True, ExitStatus.SOME_FAILED, True)
    if isinstance(error, ClientMissing):
        return Outcome(State.ERROR, detail, False, ExitStatus.SOME_FAILED, True)
    if isinstance(error, MountError):  # TemporaryMountError, TimeoutExpired, a failed verification
        return Outcome(State.ERROR, detail, True, ExitStatus.SOME_FAILED, True)
    if isinstance(error, InvalidEntry):
        return Outcome(State.ERROR, detail, False, ExitStatus.SOME_FAILED, True)
    if isinstance(error, SourceUnavailable):
        return Outcome(State.PENDING, f"source unavailable, nothing changed: {detail}", True,
                       ExitStatus.SOURCE_UNAVAILABLE, True)  # fmt: skip
    if isinstance(error, LockHeld):
        return Outcome(State.PENDING, f"{detail}; nothing done", True, ExitStatus.LOCKED, True)
    if isinstance(error, (ConfigError, StateError)):
        return Outcome(State.ERROR, detail, False, ExitStatus.USAGE, True)
    if isinstance(error, OSError):  # a mount point that cannot be made, a file that cannot be written
        return Outcome(State.ERROR, detail, True, ExitStatus.SOME_FAILED, True)
    return Outcome(State.ERROR, f"{type(error).__name__}: {detail}", True, ExitStatus.SOME_FAILED, False)
