"""fstab.py: byte-exact round trips, foreign lines untouched, our marker accepted by findmnt, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sharedfs_agent import fstab
from sharedfs_agent.model import FstabEntry
from tests.support import findmnt

FIXTURES = Path(__file__).parent.parent / "fixtures"

OURS = FstabEntry("gl1:/home", "/home", "glusterfs", f"rw,nosuid,nodev,_netdev,nofail,{fstab.MARKER}")


def test_corpus_round_trips_byte_for_byte():
    for path in FIXTURES.glob("*fstab*"):
        text = path.read_text()
        assert fstab.parse(text).render() == text


def test_corpus_entries_match_findmnt():
    path = FIXTURES / "util-linux_fstab.comment"
    ours = [
        (e.entry.spec, fstab.normalise_target(e.entry.file), e.entry.vfstype)
        for e in fstab.parse(path.read_text()).lines
        if e.entry
    ]
    reference = [(r["source"], fstab.normalise_target(r["target"]), r["fstype"]) for r in findmnt.fstab(str(path))]
    assert ours == reference


def test_our_line_is_understood_by_findmnt(tmp_path):
    path = tmp_path / "fstab"
    entry = FstabEntry("gl1:/vol", "/mnt/a b\\c", "glusterfs", f"rw,_netdev,nofail,{fstab.MARKER}")
    path.write_text("# keep me\n" + fstab.render_entry(entry))
    (row,) = findmnt.fstab(str(path))
    assert (row["source"], row["target"], row["fstype"], row["options"]) == (
        "gl1:/vol",
        "/mnt/a b\\c",
        "glusterfs",
        entry.mntops,
    )
    assert fstab.read(str(path)).owned() == {"/mnt/a b\\c": entry}


def test_with_owned_edits_only_our_lines():
    text = (
        "# head\nUUID=1 / ext4 defaults 0 1\n\n" + fstab.render_entry(OURS) + "\t# indented comment\nlast-no-newline /x"
    )
    table = fstab.parse(text)
    assert set(table.owned()) == {"/home"}
    assert set(table.foreign_targets()) == {"/", "/x"}
    new = FstabEntry("gl1:/data", "/data", "glusterfs", f"rw,{fstab.MARKER}")
    updated = table.with_owned({"/data": new}).render()
    assert (
        updated
        == "# head\nUUID=1 / ext4 defaults 0 1\n\n\t# indented comment\nlast-no-newline /x\n" + fstab.render_entry(new)
    )
    assert fstab.parse(updated).with_owned({}).render() == updated.replace(fstab.render_entry(new), "")


line = st.one_of(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
        ),
        max_size=40,
    ),
    st.sampled_from(
        ["# comment", "", "   ", "UUID=x / ext4 defaults 0 1", "a\tb\tc", f"h:/v /m glusterfs {fstab.MARKER} 0 0"]
    ),
)
fstab_text = st.tuples(st.lists(line, max_size=12), st.booleans()).map(
    lambda t: "\n".join(t[0]) + ("\n" if t[1] and t[0] else "")
)


@settings(max_examples=300)
@given(fstab_text)
def test_any_text_round_trips(text):
    assert fstab.parse(text).render() == text


def foreign_lines(text: str):
    return [raw.rstrip("\n") for raw in (x.raw for x in fstab.parse(text).lines if not x.owned)]


mount_points = st.sampled_from(["/mnt/a", "/mnt/b", "/mnt/a b", "/home", "/srv/x\\y"])
updates = st.lists(
    st.dictionaries(mount_points, st.sampled_from(["h:/v1", "h:/v2", "other:/v"]), max_size=4), max_size=6
)


@settings(max_examples=200)
@given(fstab_text, updates)
def test_foreign_lines_never_change_under_updates(text, sequence):
    before = foreign_lines(text)
    table = fstab.parse(text)
    for wanted in sequence:
        entries = {mp: FstabEntry(spec, mp, "glusterfs", f"rw,{fstab.MARKER}") for mp, spec in wanted.items()}
        table = fstab.parse(table.with_owned(entries).render())
        assert foreign_lines(table.render()) == before
        assert table.owned() == entries


def test_write_atomic_keeps_mode_and_previous_version(tmp_path):
    path = tmp_path / "fstab"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    assert fstab.write_atomic(str(path), fstab.parse("old\n").with_owned({"/home": OURS}))
    assert path.read_text() == "old\n" + fstab.render_entry(OURS)
    assert (tmp_path / "fstab.sharedfs-agent.bak").read_text() == "old\n"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert not fstab.write_atomic(str(path), fstab.read(str(path)))  # unchanged: no write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fstab", "fstab.sharedfs-agent.bak"]
