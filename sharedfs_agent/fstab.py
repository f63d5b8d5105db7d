"""/etc/fstab: parse keeping every byte, edit only our marked lines, write atomically."""

from __future__ import annotations

import functools
import os
import re
from typing import Dict, Mapping, Optional, Tuple

from . import atomicfile
from .escapes import escape, unescape
from .model import FstabEntry
from .records import dataclass

__all__ = [
    "MARKER",
    "FstabLine",
    "FstabFile",
    "parse",
    "render_entry",
    "read",
    "write_atomic",
    "normalise_target",
]

# Our lines carry this option. mount(8), findmnt and systemd accept any "x-" option, and
# mount.glusterfs drops x-* while it refuses "comment=" (cloud-init's marker) outright.
MARKER = "x-sharedfs-agent"

_FIELDS = re.compile(r"[^ \t\r\n]+")


@dataclass(frozen=True)
class FstabLine:
    """One physical line, kept verbatim (with its newline, if it had one)."""

    raw: str
    entry: Optional[FstabEntry] = None  # None for comments, blanks and unparsable lines

    @property
    def owned(self) -> bool:
        return self.entry is not None and MARKER in self.entry.options


def normalise_target(path: str) -> str:
    """fstab allows "/any/foo/"; the kernel shows "/any/foo". Compare in the kernel's form."""
    return path.rstrip("/") or "/"


def _parse_entry(raw: str) -> Optional[FstabEntry]:
    stripped = raw.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = _FIELDS.findall(stripped)
    if len(fields) < 2:
        return None
    try:
        return FstabEntry(
            spec=unescape(fields[0]),
            file=unescape(fields[1]),
            vfstype=fields[2] if len(fields) > 2 else "auto",
            mntops=fields[3] if len(fields) > 3 else "defaults",
            freq=int(fields[4]) if len(fields) > 4 else 0,
            passno=int(fields[5]) if len(fields) > 5 else 0,
        )
    except ValueError:
        return None  # a line mount(8) would not understand either; keep it, never own it


def render_entry(entry: FstabEntry) -> str:
    return (
        f"{escape(entry.spec)} {escape(entry.file)} {escape(entry.vfstype)} "
        f"{escape(entry.mntops)} {entry.freq} {entry.passno}\n"
    )


@dataclass(frozen=True)
class FstabFile:
    """A whole fstab: render() gives back exactly the text that was parsed."""

    lines: Tuple[FstabLine, ...]

    def render(self) -> str:
        return "".join(line.raw for line in self.lines)

    def owned(self) -> Dict[str, FstabEntry]:
        """Our entries by mount point."""
        return {normalise_target(x.entry.file): x.entry for x in self.lines if x.owned}

    def foreign_targets(self) -> Dict[str, FstabEntry]:
        """Mount points named by lines we did not write; these are never ours to take."""
        return {normalise_target(x.entry.file): x.entry for x in self.lines if x.entry is not None and not x.owned}

    def with_owned(self, wanted: Mapping[str, FstabEntry]) -> FstabFile:
        """Our lines become exactly `wanted` (by mount point); every other line is kept as is.

        Changed lines are rewritten in place, dropped ones removed, new ones appended.
        """
        out = []
        seen = set()
        for line in self.lines:
            if not line.owned:
                out.append(line)
                continue
            target = normalise_target(line.entry.file)
            entry = wanted.get(target)
            if entry is None or target in seen:
                continue
            seen.add(target)
            out.append(line if entry == line.entry else FstabLine(render_entry(entry), entry))
        new = [target for target in wanted if target not in seen]
        if new and out and not out[-1].raw.endswith("\n"):
            # Terminate the last line (its bytes are kept) so ours starts on a line of its own.
            out[-1] = FstabLine(out[-1].raw + "\n", out[-1].entry)
        out.extend(FstabLine(render_entry(wanted[t]), wanted[t]) for t in new)
        return FstabFile(tuple(out))


@functools.lru_cache(maxsize=4)
def parse(text: str) -> FstabFile:
    """Memoised on the text (FstabFile is immutable): an unchanged fstab is parsed once."""
    return FstabFile(tuple(FstabLine(raw, _parse_entry(raw)) for raw in text.splitlines(True)))


def read(path: str) -> FstabFile:
    try:
        with open(path, "rb") as f:
            return parse(os.fsdecode(f.read()))
    except FileNotFoundError:
        return FstabFile(())


def write_atomic(path: str, new: FstabFile, backup_suffix: str = ".sharedfs-agent.bak") -> bool:
    """Write `new` to `path` if it differs; the previous file is kept at path+backup_suffix.

    Returns whether anything was written. The rename is the commit point; the directory is
    fsynced after it so the rename itself survives a power cut. Unlike cloud-init and ansible,
    which rewrite fstab in place, a kill -9 at any instant leaves the old or the new file.
    """
    data = os.fsencode(new.render())
    try:
        with open(path, "rb") as f:
            old: Optional[bytes] = f.read()
        like: Optional[os.stat_result] = os.stat(path)
    except FileNotFoundError:
        old, like = None, None
    if old == data:
        return False
    if old is not None:
        atomicfile.replace(path + backup_suffix, old, like)
    atomicfile.replace(path, data, like)
    return True
