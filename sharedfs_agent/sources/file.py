"""The `file` source: the desired-state JSON document at a local path."""

from __future__ import annotations

import logging
import os
import select
import struct
import time
from typing import Any, Mapping, Optional, Tuple

from ..errors import SourceUnavailable
from .base import MAX_DOCUMENT_BYTES, Key, Source, SourcePlugin

__all__ = ["FileSource", "FilePlugin", "DirectoryWatch", "POLL", "POLL_WATCHED"]

log = logging.getLogger(__name__)

# How often a waiting fetch() looks at the file's stamp. Without inotify every 0.5 s (about
# 0.9 s of CPU per idle hour on Debian 12's Python); with it, the kernel wakes the wait on a
# change in the directory, and the stamp is still looked at every 5 s for what inotify does
# not see (a file on NFS or CephFS changed by another host).
POLL = 0.5
POLL_WATCHED = 5.0

# inotify(7): what happens to an entry of the directory (written and closed, renamed in or out,
# made, removed, its owner or mode) or to the directory itself.
_IN_ATTRIB, _IN_CLOSE_WRITE, _IN_MOVED_FROM, _IN_MOVED_TO = 0x4, 0x8, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF, _IN_IGNORED = 0x100, 0x200, 0x400, 0x800, 0x8000
_MASK = _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_MASK |= _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class DirectoryWatch:
    """inotify on one directory, through libc with ctypes (0.25 MB, only for the file source).
    wait() returns when something in the directory changed or the timeout passed. `gone` once
    the directory was removed or moved: the caller makes a new watch."""

    def __init__(self, directory: str) -> None:
        import ctypes  # only the file source pays for it

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), _MASK) < 0:
            errno = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(errno, f"inotify_add_watch {directory}: {os.strerror(errno)}")
        self.gone = False

    def wait(self, timeout: float) -> None:
        if select.select([self.fd], [], [], max(0.0, timeout))[0]:
            self._drain()

    def _drain(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            _, mask, _, length = _EVENT.unpack_from(data, offset)
            self.gone = self.gone or bool(mask & (_IN_IGNORED | _IN_DELETE_SELF | _IN_MOVE_SELF))
            offset += _EVENT.size + length

    def close(self) -> None:
        os.close(self.fd)


class FileSource(Source):
    """Not long-polled: the daemon asks with wait = resync_interval, and fetch() watches the
    file's directory with inotify meanwhile (its stamp every 0.5 s where inotify is missing),
    so a change is seen at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: Optional[Tuple[int, int, int]] = None  # (inode, size, mtime) of the last read
        self.watch: Optional[DirectoryWatch] = None
        self.polling = False  # this wait polls: the watch was refused (the directory is missing…)
        self.refusal = ""  # why, said once in the log

    def _sleep(self, seconds: float) -> None:
        """Until the directory changes (or the stamp is due): a watch just made returns at once,
        so the stamp is looked at again with the watch in place and no change slips between."""
        if self.watch is not None and self.watch.gone:  # the directory was replaced: watch the new one
            self._unwatch()
        if self.watch is None and not self.polling:
            try:
                self.watch = DirectoryWatch(os.path.dirname(os.path.abspath(self.path)))
                return
            except (OSError, ImportError, AttributeError) as e:  # no directory, no inotify, no ctypes
                if str(e) != self.refusal:
                    log.info("watching %s by polling every %gs (no inotify: %s)", self.path, POLL, e)
                self.polling, self.refusal = True, str(e)  # until this wait ends; the next one tries again
        if self.watch is None:
            time.sleep(min(POLL, seconds))
        else:
            self.watch.wait(min(POLL_WATCHED, seconds))

    def _unwatch(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def _stamp(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def fetch(self, wait: float = 0) -> bytes:
        # The stamp decides, whatever woke the wait: inotify only says when to look.
        deadline = time.monotonic() + wait
        try:
            while wait > 0 and self._stamp() == self.seen and time.monotonic() < deadline:
                self._sleep(max(0.0, deadline - time.monotonic()))
        finally:
            self._unwatch()  # made for each wait: a source dropped on SIGHUP leaves no descriptor
            self.polling = False
        self.seen = self._stamp()
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as e:
            raise SourceUnavailable(f"cannot read {self.path}: {e.strerror}") from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise SourceUnavailable(f"{self.path} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return data

    def describe(self) -> str:
        return f"file {self.path}"


class FilePlugin(SourcePlugin):
    name = "file"
    keys = {"path": Key("/etc/sharedfs-agent/filesystems.json", "path")}

    def build(self, settings: Mapping[str, Any]) -> FileSource:
        return FileSource(settings["path"])
