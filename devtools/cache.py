"""What the tests build once and keep under SHAREDFS_TEST_CACHE (default /var/cache/sharedfs-tests), keyed by its inputs.

A build goes into NAME.building and is renamed to NAME only when it is complete (a marker file
inside says so), so a build interrupted by anything, kill -9 included, is made again from the
start next time and never used half-made.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

__all__ = ["CACHE", "build_once"]

CACHE = Path(os.environ.get("SHAREDFS_TEST_CACHE", "/var/cache/sharedfs-tests"))
_COMPLETE = ".sharedfs-complete"


def build_once(path: Path, build: Callable[[Path], None], inputs: str) -> Path:
    """path, made first by build(directory) if it is not complete; inputs is kept in the marker."""
    if (path / _COMPLETE).exists():
        return path
    building = path.with_name(path.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    build(building)
    (building / _COMPLETE).write_text(inputs)
    shutil.rmtree(path, ignore_errors=True)
    building.rename(path)
    return path
