"""actual.py against findmnt: the corpus, generated hostile paths, and the live mount table."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sharedfs_agent.actual import parse_mountinfo, read_mountinfo, top_mounts
from sharedfs_agent.escapes import escape, unescape
from tests.support import findmnt

FIXTURES = Path(__file__).parent.parent / "fixtures"


def as_findmnt(record) -> dict:
    return {
        "id": record.mount_id,
        "parent": record.parent_id,
        "maj:min": record.device,
        "fsroot": record.root,
        "target": record.mount_point,
        "fstype": record.fstype,
        "vfs-options": record.mount_options,
        "fs-options": record.super_options,
        "source": record.source or None,
        "opt-fields": " ".join(record.optional_fields) or None,
    }


def same_as_findmnt(path: str) -> None:
    ours = sorted((as_findmnt(r) for r in read_mountinfo(path)), key=lambda r: r["id"])
    reference = sorted(findmnt.mountinfo(path), key=lambda r: r["id"])
    assert ours == reference


def test_corpus_files_parse_like_findmnt():
    files = sorted(FIXTURES.glob("*mountinfo*"))
    assert len(files) == 2
    for path in files:
        same_as_findmnt(str(path))


def test_live_table_parses_like_findmnt():
    # Copied first: the live table may change between two reads.
    with tempfile.NamedTemporaryFile("wb", suffix=".mountinfo") as copy:
        copy.write(Path("/proc/self/mountinfo").read_bytes())
        copy.flush()
        same_as_findmnt(copy.name)
        assert len(read_mountinfo(copy.name)) >= 1


def test_optional_fields_and_empty_source():
    (record,) = parse_mountinfo("21 20 0:53 / /mnt/test rw,relatime shared:212 master:1 - tmpfs  rw\n")
    assert record.optional_fields == ("shared:212", "master:1")
    assert record.source == ""
    assert record.super_options == "rw"


hostile_path = st.lists(
    st.text(alphabet=st.sampled_from("ab é\t\n\\-_.0"), min_size=1, max_size=12).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=4,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None)
@given(target=hostile_path, root=hostile_path, source=st.text(alphabet="xy \t\\:/", min_size=1, max_size=10))
def test_hostile_paths_parse_like_findmnt(target, root, source):
    line = f"77 1 0:99 {escape(root)} {escape(target)} rw,relatime - fuse.glusterfs {escape(source)} rw\n"
    (record,) = parse_mountinfo(line)
    assert (record.mount_point, record.root, record.source) == (target, root, source)
    with tempfile.NamedTemporaryFile("wb", suffix=".mountinfo") as f:
        f.write(os.fsencode(line))
        f.flush()
        same_as_findmnt(f.name)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_escape_round_trips_and_never_spills(text):
    escaped = escape(text)
    assert unescape(escaped) == text
    assert not any(c in escaped for c in " \t\n")


def test_top_mount_is_the_last_at_a_mount_point():
    records = parse_mountinfo("30 1 0:1 / /mnt/x rw - tmpfs a rw\n31 30 0:2 / /mnt/x rw - fuse.glusterfs h:/v rw\n")
    assert top_mounts(records)["/mnt/x"].mount_id == 31
