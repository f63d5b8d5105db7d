"""The mounts that exist: /proc/self/mountinfo parsed into MountRecords (called by reconcile)."""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Dict, Iterable, Tuple

from .escapes import unescape
from .model import MountRecord

__all__ = ["parse_mountinfo", "read_mountinfo", "top_mounts", "MOUNTINFO"]

MOUNTINFO = "/proc/self/mountinfo"
_DEVICE = re.compile(r"[0-9]+:[0-9]+")  # st_dev as "major:minor", both decimal
log = logging.getLogger(__name__)


def parse_line(line: str) -> MountRecord:
    """One mountinfo line; raises ValueError on anything the kernel would not write."""
    fields = line.rstrip("\n").split(" ")
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise ValueError(f"no ' - ' separator in mountinfo line: {line!r}") from None
    if len(fields) < 10 or len(fields) - sep < 3:
        raise ValueError(f"short mountinfo line: {line!r}")
    # A missing or malformed device shifts every later field (kubernetes mount-utils TestBadParseMountInfo).
    if not _DEVICE.fullmatch(fields[2]):
        raise ValueError(f"device field {fields[2]!r} is not major:minor in mountinfo line: {line!r}")
    return MountRecord(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        device=fields[2],
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        mount_options=fields[5],
        optional_fields=tuple(fields[6:sep]),
        fstype=unescape(fields[sep + 1]),
        source=unescape(fields[sep + 2]),
        # Super options are the rest; the kernel never puts a space in them unescaped.
        super_options=" ".join(fields[sep + 3 :]),
    )


@functools.lru_cache(maxsize=2)
def parse_mountinfo(text: str) -> Tuple[MountRecord, ...]:
    """Memoised on the text: an idle daemon re-reads an unchanged table every pass.

    Lines end at "\n" only: the kernel escapes space, tab, newline and backslash in paths but writes
    \r, \v, \f, \x1c-\x1e, U+0085, U+2028 and U+2029 raw, and str.splitlines() would cut a line at
    any of them (util-linux's mountinfo test file, line 33). A line that cannot be read is logged and
    skipped: one odd mount, which any user with FUSE can make, must not stop every pass.
    """
    records = []
    for line in text.split("\n"):
        if not line.strip(" "):
            continue
        try:
            records.append(parse_line(line))
        except ValueError as e:
            log.warning("skipped a mountinfo line that cannot be read: %s", e)
    return tuple(records)


def read_mountinfo(path: str = MOUNTINFO) -> Tuple[MountRecord, ...]:
    # Bytes + surrogateescape: a path that is not UTF-8 still round-trips to the same bytes.
    with open(path, "rb") as f:
        return parse_mountinfo(os.fsdecode(f.read()))


def top_mounts(records: Iterable[MountRecord]) -> Dict[str, MountRecord]:
    """The visible mount at each mount point: mountinfo lists a mount after the one it covers."""
    return {r.mount_point: r for r in records}
