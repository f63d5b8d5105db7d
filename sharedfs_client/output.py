"""Rendering for people and scripts: tables, json, yaml, value; server text made safe for a terminal.

Everything the server sends is data, never terminal control: an escape sequence in a filesystem's
detail could otherwise rewrite the screen, retitle the window or hide text. sanitize() turns
C0/C1 controls, DEL and the bidirectional overrides (which reorder what is shown) into visible
escapes. json and yaml escape them by construction (ASCII-only output).

yaml without PyYAML: the emitter writes a safe subset — block mappings and sequences, scalars
plain only when they cannot be read as anything but that string, otherwise double-quoted with
escapes for every control and non-ASCII character. `yaml.safe_load` gives back
exactly the data `-f json` shows.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Sequence

__all__ = ["FORMATS", "sanitize", "render_list", "render_one", "to_yaml"]

FORMATS = ("table", "json", "yaml", "value")

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def sanitize(text: Any) -> str:
    """str(text) with every character that steers a terminal shown as an escape."""
    return _UNSAFE.sub(_escape, str(text))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return sanitize(value)


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    body = [line(r) for r in rows] + [rule] if rows else []
    return "\n".join([rule, line(headings), rule, *body])


def render_list(rows: Sequence[dict], columns: Sequence[str], headings: Sequence[str], fmt: str) -> str:
    """Many records: a table with these columns; json/yaml give the records' chosen fields."""
    picked = [{c: row.get(c) for c in columns} for row in rows]
    if fmt == "json":
        return json.dumps(picked, indent=2, sort_keys=False)
    if fmt == "yaml":
        return to_yaml(picked) if picked else "[]"
    cells = [[_cell(row[c]) for c in columns] for row in picked]
    if fmt == "value":
        return "\n".join(" ".join(r) for r in cells)
    return _table(headings, cells)


def render_one(record: dict, fields: Sequence[str], fmt: str) -> str:
    """One record: a Field/Value table; value prints the values one a line."""
    picked = {f: record.get(f) for f in fields}
    if fmt == "json":
        return json.dumps(picked, indent=2)
    if fmt == "yaml":
        return to_yaml(picked)
    if fmt == "value":
        return "\n".join(_cell(v) for v in picked.values())
    return _table(["Field", "Value"], [[f, _cell(v)] for f, v in picked.items()])


# -- yaml: the safe subset --------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*")
# Plain words YAML 1.1 or 1.2 would read as something other than a string.
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _quoted(text)


_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar in ASCII: every control and non-ASCII character escaped. Not
    json.dumps: YAML reads a JSON surrogate pair as two characters, so astral ones need \\U."""
    out = []
    for c in text:
        code = ord(c)
        if c in _SHORT:
            out.append(_SHORT[c])
        elif 0x20 <= code < 0x7F:
            out.append(c)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def to_yaml(data: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(data, dict):
        if not data:
            return pad + "{}"
        lines: List[str] = []
        for key, value in data.items():
            head = f"{pad}{_scalar(key)}:"
            if isinstance(value, (dict, list)) and value:
                lines += [head, to_yaml(value, indent + 2)]
            else:
                lines.append(f"{head} {_inline(value)}")
        return "\n".join(lines)
    if isinstance(data, list):
        if not data:
            return pad + "[]"
        lines = []
        for item in data:
            if isinstance(item, (dict, list)) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2:]}")  # the first key on the dash's line
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return "\n".join(lines)
    return pad + _scalar(data)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
