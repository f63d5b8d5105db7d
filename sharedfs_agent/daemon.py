"""`sharedfs-agent run`: wait for a change -> reconcile -> report, with backoff, signals and sd_notify."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import select
import signal
import threading
import time
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from . import sources
from .config import AgentConfig
from .errors import ConfigError, SourceUnavailable, outcome
from .gather import Gatherer
from .host import systemd
from .lock import PassLock
from .logs import fields
from .model import State, Verdict
from .mounters import registry
from .reconcile import Reconciler
from .report import write_metrics, write_status
from .sources import Reporter, Source

__all__ = ["Daemon", "Backoff", "Watcher", "Wakeup", "watch", "FIRST_ANSWER_GRACE", "BACKOFF_CAP"]

log = logging.getLogger(__name__)

# Before the first pass, how long the daemon waits for the sources' first answers. Short: the
# unit is Before=remote-fs.target, so READY=1 holds up the boot; a source that has not answered
# by then is run on its last-known-good part (nothing unmounted), and its answer wakes a pass.
FIRST_ANSWER_GRACE = 0.2
# READY=1 is sent after the first pass, or this long after run() began if that pass is still
# mounting: what a boot needs mounted is in our fstab lines (systemd mounts those itself), and a
# mount helper may take up to mount_timeout.
READY_WITHIN = 0.3

# Full jitter in [0, 10 s] once the outage is long: every agent is back within 10 s of the
# source's return (goal 15 s), and N returning agents arrive spread over those 10 s, at about
# N / 10 requests a second (20,000 agents: 2,000/s, mostly 304s), never all at once. A server
# that cannot take that answers 503 with Retry-After (sharedfs-api --max-busy), which is honoured
# with jitter: the server's seconds, then up to half as long again.
BACKOFF_CAP = 10.0
RETRY_AFTER_CAP = 240.0  # a Retry-After longer than this is a misconfiguration, not a request


class Backoff:
    """Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2^n)])."""

    def __init__(self, base: float = 1.0, cap: float = BACKOFF_CAP,
                 rng: Callable[[float, float], float] = random.uniform) -> None:  # fmt: skip
        self.base, self.cap, self.rng, self.failures = base, cap, rng, 0

    def next(self, retry_after: Optional[float] = None) -> float:
        delay = self.rng(0, min(self.cap, self.base * 2 ** min(self.failures, 32)))
        self.failures += 1
        if not retry_after:
            return delay
        # The server said when (it sheds load, or restarts): never sooner, and up to half as long
        # again, so the agents it answered in the same second do not all come back in one.
        retry_after = min(retry_after, RETRY_AFTER_CAP)
        return retry_after + self.rng(0, retry_after / 2)

    def reset(self) -> None:
        self.failures = 0


class Wakeup:
    """What the main loop sleeps on: a pipe. set() may be called from any thread and from a
    signal handler (it takes no lock, unlike threading.Event, whose set() in a handler can
    deadlock on the lock the interrupted main thread holds); wait() sleeps in select() until
    then, with no periodic tick."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # the pipe is full: it is set already

    def wait(self, timeout: Optional[float]) -> bool:
        """True when set() was called (since the last wait that returned True); clears it."""
        readable, _, _ = select.select([self._read], [], [], None if timeout is None else max(0.0, timeout))
        if not readable:
            return False
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class Watcher(Source):
    """A thread that long-polls one source and keeps the newest document; `changed` (shared by
    all watchers, anything with set()) is set when it differs from the one before, and on the
    first refusal. Reconciling never waits on the network because of it. A source that does not
    long-poll is asked with wait=resync_interval. `announce` (the source's reporter's) is called
    in this thread before the first fetch and before each retry, never in the main loop."""

    def __init__(self, source: Source, wait: float, stopping: threading.Event, changed,
                 min_interval: float = 30.0, announce: Optional[Callable[[], None]] = None) -> None:  # fmt: skip
        self.source, self.wait, self.stopping, self.changed = source, wait, stopping, changed
        self.min_interval = min_interval  # between polls when the server does not hold requests
        self.announce = announce
        self.heard = threading.Event()  # set on the first answer or error
        self.lock = threading.Lock()
        self.document: Optional[bytes] = None
        self.error: Optional[SourceUnavailable] = SourceUnavailable("no answer from the source yet")
        self.backoff = Backoff()
        self.requests = 0
        self.thread = threading.Thread(target=self._loop, name=f"watch {source.describe()}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def fetch(self, wait: float = 0) -> bytes:
        """The newest good document, or the newest error, at once (the Source contract, for Gatherer)."""
        with self.lock:
            if self.error is not None:
                raise self.error
            return self.document

    def _loop(self) -> None:
        wait = 0.0  # the first fetch answers at once
        failing = True  # announce before the first fetch: the source may not know us yet
        while not self.stopping.is_set():
            if failing and self.announce is not None:
                try:
                    self.announce()
                except Exception:  # a reporter's bug must not stop the watching
                    log.exception("announcing to %s failed", self.source.describe())
            start = time.monotonic()
            self.requests += 1
            try:
                document = self.source.fetch(wait=wait)
            except SourceUnavailable as e:
                failing = True
                delay = self.backoff.next(e.retry_after)
                log.warning("source unavailable (%s); next try in %.1fs", e, delay)
                with self.lock:
                    # The first refusal is news too (the placeholder "no answer yet" is not an
                    # answer): the daemon records the outage at once.
                    fresh_error = self.error is None or not self.heard.is_set()
                    self.error = e
                self.heard.set()
                if fresh_error:
                    self.changed.set()  # let the daemon record the outage (status, metrics)
                self.stopping.wait(delay)
                continue
            failing = False
            self.backoff.reset()
            with self.lock:
                new = document != self.document or self.error is not None
                self.document, self.error = document, None
            self.heard.set()
            if new:
                log.info("desired state changed (%d bytes from %s)", len(document), self.source.describe())
                self.changed.set()
            elif wait and time.monotonic() - start < wait / 2:
                # The server answered at once with nothing new: it does not hold requests.
                # Poll instead, with jitter so a fleet does not arrive in step.
                self.stopping.wait(random.uniform(0.5, 1.5) * self.min_interval)
            wait = self.wait

    def describe(self) -> str:
        return self.source.describe()


def watch(config: AgentConfig, stopping: threading.Event, changed) -> Tuple[Dict[str, Watcher], Dict[str, Reporter]]:
    """A watcher (not started) for each source the config names, and the reporters of those that have one."""
    plugins = sources.registry()
    watchers: Dict[str, Watcher] = {}
    reporters: Dict[str, Reporter] = {}
    for name in config.sources:
        source = sources.build(plugins[name], config.source_settings.get(name, {}))
        reporter = plugins[name].reporter(source)
        if reporter is not None:
            reporters[name] = reporter
        watchers[name] = Watcher(source, source.long_poll or config.resync_interval, stopping, changed,
                                 announce=reporter.announce if reporter is not None else None)  # fmt: skip
    return watchers, reporters


class Daemon:
    """One agent process. The constructor only assigns; run() holds the loop."""

    def __init__(self, config_path: str, load: Callable[[str], AgentConfig]) -> None:
        self.config_path = config_path
        self.load = load
        self.stopping = False
        self.reload = False
        self.wakeup: Optional[Wakeup] = None  # made in run(): a pipe, so not in the constructor
        self.passes = 0
        self.states: Dict[str, Tuple[str, str]] = {}  # name -> (state, detail) logged last
        self._ready_lock = threading.Lock()
        self.ready = False

    def _notify_ready(self) -> None:
        """READY=1, once (from the main loop or the READY_WITHIN timer, whichever comes first)."""
        with self._ready_lock:
            if self.ready:
                return
            self.ready = True
        systemd.notify("READY=1")

    # -- signals: set a flag and wake the loop, nothing else (they run in the main thread) -------

    def _on_term(self, signum, frame) -> None:
        log.info("signal %s: stopping (mounts stay)", signal.Signals(signum).name)
        self.stopping = True
        self.wakeup.set()

    def _on_hup(self, signum, frame) -> None:
        log.info("SIGHUP: reloading %s", self.config_path)
        self.reload = True
        self.wakeup.set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        ready_timer = threading.Timer(READY_WITHIN, self._notify_ready)
        ready_timer.daemon = True
        ready_timer.start()
        try:
            config = self.load(self.config_path)
            lock = self._single_instance(config)
        except BaseException:
            ready_timer.cancel()  # a config that does not load must fail the start, not look ready
            raise
        self.wakeup = Wakeup()
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            while not self.stopping:
                self._serve(config, ready_timer)
                if self.reload and not self.stopping:
                    self.reload = False
                    try:
                        config = self.load(self.config_path)
                    except ConfigError as e:
                        log.error("reload refused, keeping the running config: %s", e)
        finally:
            systemd.notify("STOPPING=1")
            os.close(lock)
        return 0

    def _single_instance(self, config: AgentConfig) -> int:
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(config.state_dir, "daemon.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another sharedfs-agent daemon runs with state_dir {config.state_dir}") from None
        return fd

    def _serve(self, config: AgentConfig, ready_timer: threading.Timer) -> None:
        """Run with one config until stopped or told to reload."""
        stopping = threading.Event()
        watchers, reporters = watch(config, stopping, self.wakeup)
        mounters = registry()
        gatherer = Gatherer(config, watchers, mounters)
        reconciler = Reconciler(config, mounters)
        for watcher in watchers.values():
            watcher.start()
        # A first answer from each source if it comes at once (a pass on fresh documents rather
        # than on last-known-good ones); never longer than the grace, whatever the source does.
        deadline = time.monotonic() + FIRST_ANSWER_GRACE
        for watcher in watchers.values():
            watcher.heard.wait(max(0.0, deadline - time.monotonic()))
        watchdog = systemd.watchdog_interval()
        try:
            while not self.stopping and not self.reload:
                self._pass(config, reconciler, gatherer, reporters)
                ready_timer.cancel()
                deadline = time.monotonic() + config.resync_interval
                # Sleep until a source changed, a signal came, the watchdog is due or the resync
                # deadline passed (a full pass repairs drift: an unmount by hand, a lost line).
                while not (self.stopping or self.reload):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if watchdog:
                        systemd.notify("WATCHDOG=1")
                    if self.wakeup.wait(min(remaining, watchdog or remaining)):
                        break
        finally:
            stopping.set()

    def _pass(self, config: AgentConfig, reconciler: Reconciler, gatherer: Gatherer,
              reporters: Mapping[str, Reporter]) -> None:  # fmt: skip
        """One pass; READY=1 after the first one's local work, before anything that could wait
        on the network (reports)."""
        self.passes += 1
        start = time.monotonic()
        try:
            try:
                with PassLock(config.lock_path, wait=config.mount_timeout * 4):
                    gathered = gatherer.gather(allow_cache=True)
                    result = reconciler.run_pass(gathered.desired, gathered.fresh)
            finally:
                self._notify_ready()
        except Exception as e:  # one bad pass must not end the daemon; the next one retries
            failed = outcome(e)
            if not failed.expected:
                log.exception("reconcile pass failed")
            elif isinstance(e, SourceUnavailable):  # the outage is recorded where people look
                note = f"{failed.detail} (no last-known-good state)"
                log.warning("%s; nothing changed", note)
                write_status(config.status_path, (), gatherer.describe(), note)
                systemd.notify(f"STATUS={note[:200]}")
            else:
                log.log(logging.WARNING if failed.retry else logging.ERROR, "reconcile pass: %s%s", failed.detail,
                        "" if failed.retry else " (a person must act; retried every pass)")  # fmt: skip
            return
        down = ", ".join(sorted(gathered.unavailable))
        note = "" if gathered.fresh else f"source {down} unavailable: running on the last-known-good state (nothing is unmounted)"
        write_status(config.status_path, result.verdicts, gatherer.describe(), note)
        if config.metrics_textfile:
            write_metrics(config.metrics_textfile, result.verdicts, gathered.fresh, self.passes)
        self._log_changes(result.verdicts)
        summary = _summary(result.verdicts)
        systemd.notify(f"STATUS={summary}{'' if gathered.fresh else f' (source {down} down)'}")
        for name, reporter in reporters.items():
            if name in gathered.answered:  # states go back only to a source that answered now
                reporter.announce()
                reporter.report(gathered.verdicts_of(name, result.verdicts))
        if result.plan.actions or any(v.state is not State.MOUNTED for v in result.verdicts):
            log.info("pass %d: %s in %.2fs", self.passes, summary, time.monotonic() - start)


    def _log_changes(self, verdicts: Sequence[Verdict]) -> None:
        """One line per filesystem whose state changed, with its journal fields."""
        for v in verdicts:
            now = (v.state.value, v.detail)
            if self.states.get(v.name) != now:
                level = logging.WARNING if v.state in (State.ERROR, State.BUSY) else logging.INFO
                log.log(level, "%s %s: %s%s", v.name, v.mount_point or "-", v.state.value,
                        f": {v.detail}" if v.detail else "", extra=fields(v.name, v.mount_point or "", state=v.state.value))  # fmt: skip
                self.states[v.name] = now
        for gone in set(self.states) - {v.name for v in verdicts}:
            del self.states[gone]


def _summary(verdicts: Sequence[Verdict]) -> str:
    """How many filesystems are in each state, e.g. "2 mounted, 1 error"."""
    counts: Dict[str, int] = {}
    for v in verdicts:
        counts[v.state.value] = counts.get(v.state.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing attached"
