"""Replace a file so that a crash at any instant leaves the old or the new content, whole."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

__all__ = ["replace", "replace_if_changed", "fsync_dir", "write_json", "read_json"]


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(directory: str, prefix: str):
    """What tempfile.mkstemp does (O_EXCL, mode 0600, a random name), without importing tempfile,
    which brings shutil, random, bz2 and lzma into a daemon that writes a status file per pass."""
    for _ in range(100):
        path = os.path.join(directory, prefix + os.urandom(4).hex())  # 8 characters, as mkstemp's: _sweep knows them
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}* in {directory}")


def replace(path: str, data: bytes, like: Optional[os.stat_result] = None, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename over `path`, fsync the directory.

    `like` copies mode and owner from the file being replaced.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    _sweep(directory, prefix)
    fd, tmp = _create_temporary(directory, prefix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if like is not None:
                os.fchmod(f.fileno(), like.st_mode & 0o7777)
                os.fchown(f.fileno(), like.st_uid, like.st_gid)
            else:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def _sweep(directory: str, prefix: str) -> None:
    """Remove temp files a killed writer left behind (mkstemp adds 8 characters to the prefix).
    Callers hold the agent's pass lock, so no other writer of ours is mid-write."""
    for name in os.listdir(directory):
        if name.startswith(prefix) and len(name) == len(prefix) + 8:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


def write_json(path: str, value: Any, mode: int = 0o644) -> bool:
    """Replace path with value as JSON unless it already holds exactly that; returns whether it wrote.

    Compact on purpose: json's C encoder only runs without indent, and a no-op pass at 1,000
    filesystems rewrites nothing at all.
    """
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return replace_if_changed(path, data, mode)


def replace_if_changed(path: str, data: bytes, mode: int = 0o644) -> bool:
    """replace() unless path already holds exactly data; makes the directory (0700) if needed."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    replace(path, data, mode=mode)
    return True


def read_json(path: str) -> Any:
    """The parsed file, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
