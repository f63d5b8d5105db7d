"""The trust boundary: hostile documents are refused entry by entry, with reasons; good entries pass."""

from __future__ import annotations

import pytest

from sharedfs_agent.config import AgentConfig
from sharedfs_agent.desired import parse_document
from sharedfs_agent.errors import SourceUnavailable
from sharedfs_agent.model import Access
from sharedfs_agent.mounters import registry

CONFIG = AgentConfig()
MOUNTERS = registry(entry_points=())


def entry(**over):
    base = {"name": "home", "fs_type": "glusterfs", "export": "gl1:/home", "mount_point": "/mnt/home"}
    base.update(over)
    return base


def parse(*entries, config=CONFIG):
    return parse_document({"filesystems": list(entries)}, MOUNTERS, config)


def refused(raw, config=CONFIG) -> str:
    desired = parse(raw, config=config)
    assert desired.filesystems == ()
    (rejection,) = desired.rejections
    return rejection.reason


def test_good_entry_gets_safe_defaults():
    (fs,) = parse(entry(mount_options=["backup-volfile-servers=gl2:gl3"], access="ro")).filesystems
    assert fs.export == "gl1:/home"
    assert fs.options == ("backup-volfile-servers=gl2:gl3", "nosuid", "nodev")
    assert fs.access is Access.RO


@pytest.mark.parametrize(
    "mount_point, words",
    [
        ("/", "root filesystem"),
        ("/etc", "system directory /etc"),
        ("/mnt/../etc", "'..'"),
        ("/usr/local/data", "system directory /usr"),
        ("/proc/x", "system directory /proc"),
        ("relative/path", "not absolute"),
        ("/mnt/a/", "not normalised"),
        ("/mnt//a", "not normalised"),
        ("/mnt/a\nUUID=1 /etc ext4", "control characters"),
        ("/mnt/a\tb", "control characters"),
        ("/opt2/x", "outside the allowed roots"),
        ("/mnt/a b", "white space"),  # mount.glusterfs cannot take it
        (None, "non-empty string"),
        (7, "non-empty string"),
    ],
)
def test_hostile_mount_points_are_refused(mount_point, words):
    assert words in refused(entry(mount_point=mount_point))


@pytest.mark.parametrize(
    "options, words",
    [
        (["suid"], "allow_suid"),
        (["dev"], "allow_dev"),
        (["log-file=/etc/passwd"], "not allowed"),
        (["xlator-option=auth.allow=on"], "not allowed"),
        (["uid=0"], "not allowed"),
        (["nosuid,suid"], "characters"),
        (["backup-volfile-servers=a b"], "characters"),
        (["backup-volfile-servers=gl2;rm"], "characters"),
        (["transport=udp"], "does not match"),
        (["ro", "rw"], "both ro and rw"),
        ("acl,suid", "allow_suid"),
        ({"a": 1}, "list of strings"),
    ],
)
def test_hostile_options_are_refused(options, words):
    assert words in refused(entry(mount_options=options))


def test_permissive_options_need_the_config():
    permissive = AgentConfig(allow_suid=True, allow_exec=False)
    (fs,) = parse(entry(mount_options=["suid"]), config=permissive).filesystems
    assert fs.options == ("suid", "nodev", "noexec")
    assert "allow_exec" in refused(entry(mount_options=["exec"]), config=permissive)


@pytest.mark.parametrize(
    "over, words",
    [
        ({"fs_type": "ext4"}, "unknown fs_type 'ext4'"),
        ({"fs_type": None}, "unknown fs_type"),
        ({"export": "gl1:/home -o suid"}, "not host:/volume"),
        ({"export": "gl1:/../etc"}, "not host:/volume"),
        ({"export": "-oremount:/x"}, "not host:/volume"),
        ({"export": "gl1:/home\n"}, "control characters"),
        ({"access": "rwx"}, "not rw or ro"),
        ({"allow_nonempty": "yes"}, "true or false"),
    ],
)
def test_hostile_fields_are_refused(over, words):
    assert words in refused(entry(**over))


def test_bad_names_are_labelled_by_position():
    desired = parse(entry(name="../x"), entry(name="ok"), "not an object")
    assert [f.name for f in desired.filesystems] == ["ok"]
    assert [r.name for r in desired.rejections] == ["#0", "#2"]


def test_duplicates_keep_the_first_and_name_it():
    desired = parse(entry(), entry(name="other"), entry())
    assert [f.name for f in desired.filesystems] == ["home"]
    reasons = {r.name: r.reason for r in desired.rejections}
    assert "already used by 'home'" in reasons["other"]
    assert "appears twice" in reasons["home"]


def test_refused_entry_keeps_its_valid_mount_point_for_the_planner():
    (rejection,) = parse(entry(mount_options=["suid"])).rejections
    assert rejection.mount_point == "/mnt/home"


def test_ten_thousand_entries_are_bounded():
    many = [entry(name=f"fs{i}", mount_point=f"/mnt/fs{i}") for i in range(10_000)]
    desired = parse(*many)
    assert len(desired.filesystems) == CONFIG.max_filesystems
    assert len(desired.rejections) == 10_000 - CONFIG.max_filesystems
    assert "max_filesystems" in desired.rejections[0].reason


@pytest.mark.parametrize("doc", [None, [], {}, {"filesystems": {}}, {"filesystems": "x"}, "<html>403</html>"])
def test_garbage_documents_are_source_unavailable_not_empty(doc):
    with pytest.raises(SourceUnavailable):
        parse_document(doc, MOUNTERS, CONFIG)


def test_the_wire_states_are_the_agents_states():
    from sharedfs_agent import wire
    from sharedfs_agent.model import State

    assert tuple(s.value for s in State) == wire.STATES


@pytest.mark.parametrize(
    "mount_point, reason",
    [
        ("/home/ubuntu/.ssh", "hidden directory of a home directory"),
        ("/home/ubuntu/.config/x", "hidden directory of a home directory"),
        ("/mnt/\u202eevil", "non-printable"),  # a right-to-left override
        ("/mnt/a\u200bb", "non-printable"),  # a zero-width space
        ("/mnt/a\u2028b", "non-printable"),  # a line separator
        ("/mnt/a\u00a0b", "non-printable"),  # a no-break space looks like a space
    ],
)
def test_mount_points_that_read_differently_or_hold_credentials_are_refused(mount_point, reason):
    from sharedfs_agent import wire

    with pytest.raises(ValueError, match=reason):
        wire.check_mount_point(mount_point, ("/mnt", "/home"))


def test_ordinary_mount_points_pass_the_wire_rules():
    from sharedfs_agent import wire

    for ok in ("/home/ubuntu/data", "/mnt/a b", "/srv/.snapshots", "/mnt/données"):
        assert wire.check_mount_point(ok, ("/mnt", "/home", "/srv")) == ok


@pytest.mark.parametrize(
    "address, reason",
    [
        ("fe80::1%x,*", "not an IPv4 or IPv6"),  # a zone carrying an ACL separator and wildcard
        ("10.0.0.1,*", "not an IPv4 or IPv6"),
        ("10.0.0.0/8", "not an IPv4 or IPv6"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        (" 10.0.0.1", "not an IPv4 or IPv6"),
    ],
)
def test_only_plain_unicast_addresses_cross_the_wire(address, reason):
    from sharedfs_agent import wire

    with pytest.raises(ValueError, match=reason):
        wire.check_address(address)


def test_addresses_are_canonical():
    from sharedfs_agent import wire

    assert wire.check_address("2001:DB8:0::1") == "2001:db8::1"
    assert wire.check_address("10.1.2.3") == "10.1.2.3"
