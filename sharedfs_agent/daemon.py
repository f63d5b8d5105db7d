"""`sharedfs-agent run`: wait for a change -> reconcile -> report, with backoff, signals and sd_notify."""

from __future__ import annotations

import fcntl
import logging
import os
import random
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
from .model import State, Verdict
from .mounters import registry
from .reconcile import Reconciler
from .report import write_metrics, write_status
from .sources import Reporter, Source

__all__ = ["Daemon", "Backoff", "Watcher", "watch"]

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with full jitter (delay uniform in [0, min(cap, base * 2^n)])."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: Callable[[float, float], float] = random.uniform):
        self.base, self.cap, self.rng, self.failures = base, cap, rng, 0

    def next(self, retry_after: Optional[float] = None) -> float:
        delay = self.rng(0, min(self.cap, self.base * 2**self.failures))
        self.failures += 1
        # A server's Retry-After is a floor: we never come back sooner than it asked.
        return max(delay, min(retry_after, self.cap * 4)) if retry_after else delay

    def reset(self) -> None:
        self.failures = 0


class Watcher(Source):
    """A thread that long-polls one source and keeps the newest document; `changed` (shared by
    all watchers) is set when it differs from the one before. Reconciling never waits on the
    network because of it. A source that does not long-poll is asked with wait=resync_interval."""

    def __init__(self, source: Source, wait: float, stopping: threading.Event, changed: threading.Event,
                 min_interval: float = 30.0) -> None:  # fmt: skip
        self.source, self.wait, self.stopping, self.changed = source, wait, stopping, changed
        self.min_interval = min_interval  # between polls when the server does not hold requests
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
        while not self.stopping.is_set():
            start = time.monotonic()
            self.requests += 1
            try:
                document = self.source.fetch(wait=wait)
            except SourceUnavailable as e:
                delay = self.backoff.next(e.retry_after)
                log.warning("source unavailable (%s); next try in %.1fs", e, delay)
                with self.lock:
                    fresh_error = self.error is None
                    self.error = e
                self.heard.set()
                if fresh_error:
                    self.changed.set()  # let the daemon record the outage (status, metrics)
                self.stopping.wait(delay)
                continue
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


def watch(config: AgentConfig, stopping: threading.Event,
          changed: threading.Event) -> Tuple[Dict[str, Watcher], Dict[str, Reporter]]:  # fmt: skip
    """A watcher (not started) for each source the config names, and the reporters of those that have one."""
    plugins = sources.registry()
    watchers: Dict[str, Watcher] = {}
    reporters: Dict[str, Reporter] = {}
    for name in config.sources:
        source = sources.build(plugins[name], config.source_settings.get(name, {}))
        watchers[name] = Watcher(source, source.long_poll or config.resync_interval, stopping, changed)
        reporter = plugins[name].reporter(source)
        if reporter is not None:
            reporters[name] = reporter
    return watchers, reporters


class Daemon:
    """One agent process. The constructor only assigns; run() holds the loop."""

    def __init__(self, config_path: str, load: Callable[[str], AgentConfig]) -> None:
        self.config_path = config_path
        self.load = load
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.reload = False
        self.passes = 0

    # -- signals ----------------------------------------------------------------------------

    def _on_term(self, signum, frame) -> None:
        log.info("signal %s: stopping (mounts stay)", signal.Signals(signum).name)
        self.stopping.set()
        self.wakeup.set()

    def _on_hup(self, signum, frame) -> None:
        log.info("SIGHUP: reloading %s", self.config_path)
        self.reload = True
        self.wakeup.set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        config = self.load(self.config_path)
        lock = self._single_instance(config)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            while not self.stopping.is_set():
                self._serve(config)
                if self.reload and not self.stopping.is_set():
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

    def _serve(self, config: AgentConfig) -> None:
        """Run with one config until stopped or told to reload."""
        stopping, changed = threading.Event(), threading.Event()
        watchers, reporters = watch(config, stopping, changed)
        mounters = registry()
        gatherer = Gatherer(config, watchers, mounters)
        reconciler = Reconciler(config, mounters)
        for reporter in reporters.values():
            reporter.announce()  # before the first fetch: the source may not know us yet
        deadline = time.monotonic() + 10.0
        for watcher in watchers.values():
            watcher.start()
        for watcher in watchers.values():  # a first answer from each, if it gives one soon
            watcher.heard.wait(max(0.0, deadline - time.monotonic()))
        ready = False
        watchdog = systemd.watchdog_interval()
        try:
            while not self.stopping.is_set() and not self.reload:
                changed.clear()
                self._pass(config, reconciler, gatherer, reporters)
                if not ready:
                    systemd.notify("READY=1")
                    ready = True
                deadline = time.monotonic() + config.resync_interval
                while not (self.stopping.is_set() or self.reload or changed.is_set()):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break  # periodic full pass: repairs drift (an unmount by hand, a lost line)
                    if watchdog:
                        systemd.notify("WATCHDOG=1")
                    self._wait_any(changed, min(remaining, watchdog or remaining, 1.0))
        finally:
            stopping.set()

    def _wait_any(self, changed: threading.Event, timeout: float) -> None:
        """Sleep until a source changed, a signal arrived, or timeout."""
        if self.wakeup.wait(0) or changed.wait(timeout):
            self.wakeup.clear()

    def _pass(self, config: AgentConfig, reconciler: Reconciler, gatherer: Gatherer,
              reporters: Mapping[str, Reporter]) -> None:  # fmt: skip
        self.passes += 1
        start = time.monotonic()
        try:
            with PassLock(config.lock_path, wait=config.mount_timeout * 4):
                gathered = gatherer.gather(allow_cache=True)
                result = reconciler.run_pass(gathered.desired, gathered.fresh)
        except Exception as e:  # one bad pass must not end the daemon; the next one retries
            failed = outcome(e)
            if not failed.expected:
                log.exception("reconcile pass failed")
            elif isinstance(e, SourceUnavailable):  # the outage is recorded where people look
                for reporter in reporters.values():
                    reporter.announce()
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
        for name, reporter in reporters.items():
            reporter.announce()
            if name in gathered.answered:  # states go back only to a source that answered now
                reporter.report(gathered.verdicts_of(name, result.verdicts))
        summary = _summary(result.verdicts)
        systemd.notify(f"STATUS={summary}{'' if gathered.fresh else f' (source {down} down)'}")
        if result.plan.actions or any(v.state is not State.MOUNTED for v in result.verdicts):
            log.info("pass %d: %s in %.2fs", self.passes, summary, time.monotonic() - start)


def _summary(verdicts: Sequence[Verdict]) -> str:
    """How many filesystems are in each state, e.g. "2 mounted, 1 error"."""
    counts: Dict[str, int] = {}
    for v in verdicts:
        counts[v.state.value] = counts.get(v.state.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing attached"
