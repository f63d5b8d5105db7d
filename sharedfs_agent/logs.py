"""Where the agent's log goes: journald with structured fields under systemd (systemd-python), else stderr lines."""

from __future__ import annotations

import logging
import os
import sys
from typing import Dict, Optional

__all__ = ["setup", "fields", "under_journal", "PRIORITY"]

# syslog(3) priorities by logging level: what journald files each line under.
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def fields(name: str, mount_point: str = "", action: str = "", state: str = "") -> Dict[str, str]:
    """`extra=` for a log call about one filesystem: journal fields, so that
    `journalctl -u sharedfs-agent SHAREDFS_FS=home` tells that filesystem's story."""
    found = {"SHAREDFS_FS": name, "SHAREDFS_MOUNT_POINT": mount_point, "SHAREDFS_ACTION": action,
             "SHAREDFS_STATE": state}  # fmt: skip
    return {key: value for key, value in found.items() if value}


def under_journal() -> bool:
    """systemd connected our stderr to journald (JOURNAL_STREAM names that very stream)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class _PriorityPrefix(logging.Formatter):
    """`<N>` before each line: journald reads it as the priority (SyslogLevelPrefix=) and strips it."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def _journal_handler() -> Optional[logging.Handler]:
    """systemd-python's JournalHandler (extra `systemd`): MESSAGE, PRIORITY and every upper-case
    `extra=` key as a field. None when it is not installed. It costs some 2 MB resident
    (libsystemd and its Python modules), which is why it is used only under systemd."""
    try:
        from systemd.journal import JournalHandler  # type: ignore[import-not-found]
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="sharedfs-agent")


def setup(command: str, verbose: bool = False) -> str:
    """Configure the root logger for this command; returns where the log goes ("journal", "stderr")."""
    level = logging.DEBUG if verbose else logging.INFO
    journal = command == "run" and under_journal()
    handler = _journal_handler() if journal else None
    where = "journal"
    if handler is None:
        where = "stderr"
        handler = logging.StreamHandler(sys.stderr)
        if journal:  # journald stamps each line; the prefix carries the priority
            handler.setFormatter(_PriorityPrefix("%(levelname)s %(message)s"))
        elif command == "run":
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        else:
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return where
