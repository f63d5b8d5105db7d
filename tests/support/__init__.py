"""Test support: real-component fixtures (glusterd, private mount namespaces) and reference parsers."""

from __future__ import annotations

import os
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """A missing prerequisite skips on a developer's machine and fails in CI (CI=true)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {why}", pytrace=False)
    pytest.skip(why)


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    """Poll until predicate() is truthy or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
