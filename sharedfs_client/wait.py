"""`--wait`: follow a change to its end — the filesystem available and the instances' agents reporting.

assess() is pure (a filesystem entry and its instances listing in, a Progress out), so every rule
is a unit test; follow() is the loop that polls the API and calls it. The per-filesystem
instances listing has no long-poll (only the agents' per-instance view has one, and a state
report does not wake it), so follow() polls it once a second: a person is watching, and one
small GET a second is nothing to the API.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from .api import Client
from .errors import ApiError, Unreachable

__all__ = ["Goal", "Progress", "Waiting", "assess", "follow", "age_seconds", "WaitTimeout"]

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Goal:
    """What the change should end in: every connected instance (or one) `mounted`, one instance
    `unmounted`, or the filesystem `gone`."""

    want: str  # "mounted" | "unmounted" | "gone"
    instance: Optional[str] = None  # None: every instance the filesystem belongs on


@dataclass(frozen=True)
class Waiting:
    """Someone not there yet: an instance (or "filesystem" itself), its state, detail and the age of its report."""

    who: str
    state: str
    detail: str = ""
    age: Optional[float] = None  # seconds since its last report; None: it never reported


@dataclass(frozen=True)
class Progress:
    settled: bool  # nothing left to wait for (some may have failed)
    failed: Tuple[Waiting, ...]  # settled in `error`: named with their detail in the exit message
    waiting: Tuple[Waiting, ...]
    states: Tuple[Tuple[str, str], ...]  # (instance, mount_state) of the instances concerned, for the display

    @property
    def ok(self) -> bool:
        return self.settled and not self.failed


def age_seconds(updated_at: Optional[str], now: float) -> Optional[float]:
    """Seconds between an API timestamp (ISO 8601; naive means UTC, as SQLite keeps them) and now."""
    if not updated_at:
        return None
    try:
        when = dt.datetime.fromisoformat(str(updated_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, now - when.timestamp())


def assess(entry: Optional[dict], rows: List[dict], goal: Goal, now: float, since: Optional[float] = None) -> Progress:
    """Where the change stands. entry None: the filesystem is gone (the API answers 404).
    since: when the wait began (server clock), for `gone`: an `error` reported before it is not
    about the unmount (the server's worker does not wait for it either)."""
    if goal.want == "gone":
        return _assess_gone(entry, rows, now, since)
    if entry is None:
        if goal.want == "unmounted":
            return Progress(True, (), (), ())  # deleted meanwhile: it is on no instance any more
        return Progress(True, (Waiting("filesystem", "gone", "it was deleted while we waited"),), (), ())
    status = entry.get("status")
    if status == "error":
        return Progress(True, (Waiting("filesystem", "error", str(entry.get("status_detail") or "")),), (), ())
    if status == "deleting" and goal.want == "mounted":
        return Progress(True, (Waiting("filesystem", "deleting", "it is being deleted"),), (), ())
    if status != "available" and goal.want == "mounted":
        return Progress(False, (), (Waiting("filesystem", str(status)),), ())

    if goal.want == "mounted":
        concerned = [r for r in rows if r.get("connected") and goal.instance in (None, r.get("id"))]
        if goal.instance is not None and not concerned:
            return Progress(False, (), (Waiting(goal.instance, "not listed"),), ())
    else:
        concerned = [r for r in rows if r.get("id") == goal.instance]
    failed, waiting = [], []
    for row in concerned:
        who, state = str(row.get("id")), str(row.get("mount_state"))
        here = Waiting(who, state, str(row.get("detail") or ""), age_seconds(row.get("updated_at"), now))
        if goal.want == "unmounted" and row.get("connected"):
            scope = entry.get("scope")
            why = (f"it is still connected: a {scope}-scope filesystem belongs on every instance of "
                   "the project" if scope in ("project", "global") else "it is still connected")  # fmt: skip
            failed.append(Waiting(who, state, why, here.age))
        elif state == goal.want:
            continue
        elif state == "error":
            failed.append(here)
        else:
            waiting.append(here)
    states = tuple((str(r.get("id")), str(r.get("mount_state"))) for r in concerned)
    return Progress(not waiting, tuple(failed), tuple(waiting), states)


def _assess_gone(entry: Optional[dict], rows: List[dict], now: float, since: Optional[float]) -> Progress:
    """While the filesystem is `deleting` the server's worker waits for every instance that
    reported it (in a state other than `unmounted`) to let go before the storage is destroyed
    (docs/design.md, invariant 14); the wait is over when the API answers 404."""
    if entry is None:
        return Progress(True, (), (), ())
    failed, waiting = [], []
    reported = [r for r in rows if r.get("updated_at")]  # one that never reported holds nothing
    for row in reported:
        who, state = str(row.get("id")), str(row.get("mount_state"))
        here = Waiting(who, state, str(row.get("detail") or ""), age_seconds(row.get("updated_at"), now))
        if state == "unmounted":
            continue
        if state == "error":
            if since is None or here.age is None or now - here.age >= since:
                failed.append(here)
            continue  # an error from before the delete: a mount that never was
        waiting.append(here)
    status = str(entry.get("status"))
    if status == "error":  # the driver's delete failed
        failed.append(Waiting("filesystem", status, str(entry.get("status_detail") or "")))
    states = tuple((str(r.get("id")), str(r.get("mount_state"))) for r in reported)
    if failed and not waiting:
        return Progress(True, tuple(failed), (), states)
    return Progress(False, (), (*waiting, Waiting("filesystem", status, str(entry.get("status_detail") or ""))), states)


class WaitTimeout(Exception):
    def __init__(self, progress: Progress) -> None:
        super().__init__("timed out")
        self.progress = progress


def follow(client: Client, name: str, goal: Goal, timeout: float, on_progress: Callable[[Progress, float], None],
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Progress:  # fmt: skip
    """Poll until the goal is settled (returned) or timeout seconds pass (WaitTimeout)."""
    start, since = clock(), None
    while True:
        try:
            entry, rows = _read(client, name, goal)
            now = client.server_now()  # after a reply: the server's clock is known
            since = now if since is None else since
            progress = assess(entry, rows, goal, now, since)
        except Unreachable as e:
            # The change goes on without us (an API restart, a network blip): keep watching
            # until the timeout rather than give up on the first missed poll.
            progress = Progress(False, (), (Waiting("api", "unreachable", str(e)),), ())
        elapsed = clock() - start
        on_progress(progress, elapsed)
        if progress.settled:
            return progress
        if elapsed >= timeout:
            raise WaitTimeout(progress)
        sleep(min(POLL_SECONDS, max(0.0, timeout - elapsed)))


def _read(client: Client, name: str, goal: Goal) -> Tuple[Optional[dict], List[dict]]:
    """The filesystem's entry (None once the API answers 404) and its instances listing."""
    try:
        entry = client.get_filesystem(name)
        return entry, client.filesystem_instances(name)
    except ApiError as e:
        if e.status != 404:
            raise
        return None, []
