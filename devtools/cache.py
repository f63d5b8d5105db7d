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

__all__ = ["CACHE", "build_once", "prune_bytecode"]

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


def prune_bytecode(prefix: Path) -> int:
    """Deletes the bytecode under a PYTHONPYCACHEPREFIX tree whose source file is gone (a clone
    removed, a venv rebuilt under a new key): the tree mirrors sources by absolute path, so
    without this every new checkout's copy would stay for good. Returns how many files went."""
    gone = 0
    for directory, _, names in os.walk(prefix):
        source_dir = Path("/", Path(directory).relative_to(prefix))
        for name in names:
            stem, _, rest = name.partition(".")  # NAME.cpython-311.pyc, NAME.cpython-311.opt-1.pyc
            if rest.endswith("pyc") and not (source_dir / f"{stem}.py").exists():
                try:
                    os.unlink(os.path.join(directory, name))
                    gone += 1
                except FileNotFoundError:  # another process pruned it first
                    pass
    return gone
