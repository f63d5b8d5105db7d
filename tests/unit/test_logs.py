"""Logs: journald fields through systemd-python under systemd, `<N>`-prefixed stderr lines without it."""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest

from sharedfs_agent import logs


@pytest.fixture
def journal_stream(tmp_path, monkeypatch):
    """A file JOURNAL_STREAM names, as systemd does for a service; the test makes it stderr
    (pytest's capture replaces sys.stderr after fixtures ran)."""
    stream = open(tmp_path / "stderr", "w+")  # noqa: SIM115 - closed below
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream
    root.handlers[:], root.level = saved
    stream.close()


def test_fields_name_only_what_is_known():
    assert logs.fields("home", "/home", "mount") == {"SHAREDFS_FS": "home", "SHAREDFS_MOUNT_POINT": "/home",
                                                      "SHAREDFS_ACTION": "mount"}  # fmt: skip


def test_not_under_journal_when_journal_stream_names_another_stream(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not logs.under_journal()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not logs.under_journal()


def test_without_systemd_python_lines_carry_the_priority(journal_stream, monkeypatch):
    monkeypatch.setattr(sys, "stderr", journal_stream)
    monkeypatch.setitem(sys.modules, "systemd", None)  # not installed
    assert logs.setup("run") == "stderr"
    logging.getLogger("sharedfs_agent.x").warning("busy", extra=logs.fields("home"))
    logging.getLogger("sharedfs_agent.x").info("mounted")
    journal_stream.seek(0)
    assert journal_stream.read().splitlines() == ["<4>WARNING busy", "<6>INFO mounted"]


def test_with_systemd_python_fields_and_priority_go_to_the_journal(journal_stream, monkeypatch):
    monkeypatch.setattr(sys, "stderr", journal_stream)
    sent = []

    class JournalHandler(logging.Handler):  # systemd-python's, reduced to what it sends
        def __init__(self, **extra):
            super().__init__()
            self.extra = extra

        def emit(self, record):
            upper = {k: v for k, v in record.__dict__.items() if k.isupper()}
            sent.append({"MESSAGE": self.format(record), "PRIORITY": record.levelno, **self.extra, **upper})

    package, module = types.ModuleType("systemd"), types.ModuleType("systemd.journal")
    module.JournalHandler = JournalHandler
    package.journal = module
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", module)
    assert logs.setup("run") == "journal"
    logging.getLogger("sharedfs_agent.x").info("mounted x on /home", extra=logs.fields("home", "/home", "mount", "mounted"))
    assert sent == [{"MESSAGE": "mounted x on /home", "PRIORITY": logging.INFO, "SYSLOG_IDENTIFIER": "sharedfs-agent",
                     "SHAREDFS_FS": "home", "SHAREDFS_MOUNT_POINT": "/home", "SHAREDFS_ACTION": "mount",
                     "SHAREDFS_STATE": "mounted"}]  # fmt: skip
    assert logs.setup("once") == "stderr"  # commands a person runs print plain lines
