"""actual.py against findmnt: the corpus, generated hostile paths, and the live mount table."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharedfs_agent.actual import parse_line, parse_mountinfo, read_mountinfo, top_mounts
from sharedfs_agent.escapes import escape, unescape
from tests.support import findmnt

FIXTURES = Path(__file__).parent.parent / "fixtures"


def as_findmnt(record) -> dict:
    return {
        "id": record.mount_id,
        "parent": record.parent_id or None,  # findmnt shows parent 0 (kubernetes' root line) as null
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
    files = sorted(path for path in FIXTURES.glob("*mountinfo*") if not path.name.endswith("_bad"))
    assert [path.name for path in files] == ["kubernetes_mountinfo", "util-linux_mountinfo", "util-linux_mountinfo_nosrc"]
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
    # The kernel escapes only space, tab, newline and backslash: the other line breaks come raw.
    st.text(alphabet=st.sampled_from("ab é\t\n\\-_.0\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"), min_size=1, max_size=12).filter(lambda s: s not in (".", "..")),
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


def test_carriage_return_in_a_path_is_part_of_the_path():
    # util-linux tests/ts/libmount/files/mountinfo line 33, verbatim: the kernel writes \r raw.
    records = read_mountinfo(str(FIXTURES / "util-linux_mountinfo"))
    assert len(records) == 33
    assert records[-1].mount_point == "/mnt/test/foo\rbar" and records[-1].mount_id == 49


def test_every_raw_line_break_the_kernel_leaves_unescaped_stays_in_the_path():
    for char in "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
        text = f"10 1 0:5 / / rw - ext4 /dev/vda rw\n49 10 0:56 / /mnt/a{char}b rw - fuse.x u rw\n"
        assert [r.mount_point for r in parse_mountinfo(text)] == ["/", f"/mnt/a{char}b"], repr(char)


def test_kubernetes_parse_mount_info_vectors():
    # kubernetes mount-utils TestParseMountInfo: its expected records, as ours.
    by_id = {r.mount_id: r for r in read_mountinfo(str(FIXTURES / "kubernetes_mountinfo"))}
    expected = {
        189: (80, "8:1", "/var/lib/kubelet", "/dev/sda1", "/var/lib/kubelet", ("shared:30",), "ext4",
              "rw,relatime", "rw,commit=30,data=ordered"),
        222: (24, "253:0", "/tmp/src", "/dev/mapper/vagrant--vg-root", "/mnt/dst", ("shared:1",), "ext4",
              "rw,relatime", "rw,errors=remount-ro,data=ordered"),
        224: (62, "253:0", "/var/lib/docker/devicemapper/test/shared", "/dev/mapper/ssd-root",
              "/var/lib/docker/devicemapper/test/shared", ("master:1", "shared:44"), "ext4", "rw,relatime",
              "rw,seclabel,data=ordered"),
        28: (18, "0:24", "/", "tmpfs", "/sys/fs/cgroup", ("shared:9",), "tmpfs", "ro,nosuid,nodev,noexec", "ro,mode=755"),
        29: (28, "0:25", "/", "cgroup", "/sys/fs/cgroup/systemd", ("shared:10",), "cgroup",
             "rw,nosuid,nodev,noexec,relatime", "rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd"),
        31: (28, "0:27", "/", "cgroup", "/sys/fs/cgroup/cpuset", ("shared:13",), "cgroup",
             "rw,nosuid,nodev,noexec,relatime", "rw,cpuset"),
    }  # fmt: skip
    for mount_id, want in expected.items():
        r = by_id[mount_id]
        got = (r.parent_id, r.device, r.root, r.source, r.mount_point, r.optional_fields, r.fstype,
               r.mount_options, r.super_options)  # fmt: skip
        assert got == want, mount_id


def test_kubernetes_bad_device_fields_are_refused():
    # kubernetes mount-utils TestBadParseMountInfo: good, missing, ":0", "253:", "foo:0", "253:bar".
    good, *bad = (FIXTURES / "kubernetes_mountinfo_bad").read_text().splitlines()
    assert parse_line(good).device == "253:0"
    assert len(bad) == 5
    for line in bad:
        with pytest.raises(ValueError, match="major:minor"):
            parse_line(line)


def test_an_unreadable_line_is_skipped_and_logged_and_the_rest_is_kept(caplog, tmp_path):
    table = tmp_path / "mountinfo"
    lines = (FIXTURES / "kubernetes_mountinfo_bad").read_text().splitlines()
    table.write_text("\n".join([lines[0], lines[1], "garbage", lines[4], "30 1 0:1 / /mnt/x rw - tmpfs a rw"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="sharedfs_agent.actual"):
        records = read_mountinfo(str(table))
    assert [r.mount_point for r in records] == ["/var/lib/docker/devicemapper/test/shared", "/mnt/x"]
    skipped = [rec.getMessage() for rec in caplog.records if "skipped a mountinfo line" in rec.getMessage()]
    assert len(skipped) == 3 and "garbage" in skipped[1]
