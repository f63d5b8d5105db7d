"""Request and response bodies of the os-filesystem API, validated at the trust boundary (pydantic)."""

from __future__ import annotations

import re
from typing import List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sharedfs_agent import wire

__all__ = ["NAME", "parse_size", "canonical_size", "escape_control", "FsEntryIn", "FsEntryBody", "InstanceIn",
           "InstanceBody", "StateIn", "STATES", "check_name", "VendordataIn"]  # fmt: skip

NAME = wire.FS_NAME
IDENT = wire.IDENT
# No whitespace, no control characters: what is stored is canonical_size() of it anyway.
_SIZE = re.compile(r"([0-9]{1,7}(?:\.[0-9]{1,3})?)([kmgtp])i?b?", re.IGNORECASE)
_UNITS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
MAX_SIZE = 1024**5  # 1 PiB
STATES = wire.STATES


def check_name(kind: str, value: str, pattern: re.Pattern = IDENT) -> str:
    return wire.check_pattern(kind, value, pattern)


def parse_size(text: str) -> int:
    """ "4Gb", "80Gb", "512Mb", "1Tb" (any case; Gb means GiB as the seed used it) -> bytes."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"size {text!r} is not a number with a unit, like 512Mb, 4Gb or 1Tb")
    size = int(float(match.group(1)) * 1024 ** _UNITS[match.group(2).lower()])
    if not 0 < size <= MAX_SIZE:
        raise ValueError(f"size {text!r} must be more than 0 and at most 1Pb")
    return size


def canonical_size(size_bytes: int) -> str:
    """The stored form of a size: whole units of the largest unit that divides it, "4Gb", "1536Mb"."""
    for unit, power in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if size_bytes % 1024**power == 0:
            return f"{size_bytes // 1024**power}{unit.upper()}b"
    raise ValueError(f"size of {size_bytes} bytes is not a whole number of Kb")


def escape_control(text: str) -> str:
    """Text with every control or non-printable character (NUL, escape sequences, bidirectional
    overrides) written as a visible escape, \\x1b or \\u202e: safe to store and to print."""
    return "".join(c if c.isprintable() else _escape(ord(c)) for c in text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class FsEntryIn(BaseModel):
    """The fs_entry of a create (PUT). Read-only fields (status, export for driven types) are refused."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    name: Optional[str] = None
    size: str
    scope: Literal["instance", "project", "global"] = "instance"
    project: Optional[str] = None
    fs_type: Optional[str] = Field(default=None, pattern=r"^[a-z0-9_-]{1,32}$")
    mount_point: Optional[str] = None
    mount_options: Union[List[str], str] = Field(default_factory=list)
    export: Optional[str] = Field(default=None, max_length=1024)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        return canonical_size(parse_size(value))  # "4gib", "4096Mb" and "4Gb" are one size, stored as "4Gb"

    @field_validator("mount_point")
    @classmethod
    def _mount_point(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            wire.check_mount_point(value, ("/",))  # the form only: each agent checks its own roots
        return value

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: Union[List[str], str]) -> List[str]:
        items = [o for o in value.split(",") if o] if isinstance(value, str) else value
        if len(items) > 32:
            raise ValueError("at most 32 mount options")
        for item in items:
            if not wire.OPTION.fullmatch(item):
                raise ValueError(f"mount option {item!r} has characters an option may not have")
        return items

    @field_validator("export")
    @classmethod
    def _export(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value or re.search(r"[\x00-\x20\x7f]", value)):
            raise ValueError("export must be non-empty, without spaces or control characters")
        return value


class FsEntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fs_entry: FsEntryIn


class InstanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addresses: List[str] = Field(default_factory=list, max_length=wire.MAX_ADDRESSES)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: List[str]) -> List[str]:
        # Each lands in a storage ACL: only a plain unicast address, canonical (wire.check_address).
        return sorted({wire.check_address(address) for address in value})


class InstanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: InstanceIn = Field(default_factory=InstanceIn)


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal[wire.STATES]
    detail: str = Field(default="", max_length=1000)

    @field_validator("detail")
    @classmethod
    def _detail(cls, value: str) -> str:
        # Free text from a mount's error output: kept, with control characters (a NUL breaks
        # PostgreSQL's text, an escape sequence a terminal) escaped rather than the report refused.
        return escape_control(value)


class VendordataIn(BaseModel):
    """What Nova's DynamicJSON vendordata provider POSTs (nova/api/metadata/vendordata_dynamic.py);
    the keys sharedfs does not use (image-id, user-data, metadata, boot-roles) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    project_id: str = Field(alias="project-id")
    instance_id: str = Field(alias="instance-id")
    hostname: Optional[str] = None

    @field_validator("project_id", "instance_id")
    @classmethod
    def _ident(cls, value: str, info) -> str:
        return check_name(info.field_name.replace("_", " "), value)
