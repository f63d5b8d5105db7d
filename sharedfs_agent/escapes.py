"""Octal escapes of fstab(5) and proc(5) mountinfo fields, decoded and encoded symmetrically."""

from __future__ import annotations

import os
import re

__all__ = ["unescape", "escape"]

_OCTAL = re.compile(rb"\\([0-7]{3})")
# The kernel (seq_mangle) and libmount escape exactly these four; anything else is literal.
_MUST_ESCAPE = re.compile(rb"[ \t\n\\]")


def unescape(field: str) -> str:
    """`\\040` -> space and so on, on the raw bytes, so multibyte names survive."""
    if "\\" not in field:
        return field
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), os.fsencode(field)))


def escape(field: str) -> str:
    """Inverse of unescape(): a field that can never spill into another field or line."""
    raw = os.fsencode(field)
    return os.fsdecode(_MUST_ESCAPE.sub(lambda m: b"\\%03o" % m.group(0)[0], raw))
