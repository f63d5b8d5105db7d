"""The manila driver against a recording fake of Manila's HTTP API: sizes, export choice, rule sets, validation."""

from __future__ import annotations

import itertools
import uuid
from typing import Any, Dict, List, Optional, Tuple

import pytest

from sharedfs_api.drivers import make_driver
from sharedfs_api.drivers.base import FsSpec
from sharedfs_api.drivers.manila import TAG, ManilaDriver, choose_export, mount_options_of, size_gib
from sharedfs_api.errors import DriverError

GIB = 1 << 30
LOCATIONS = [
    {"path": "11.0.0.11:/share", "is_admin_only": True, "preferred": False},
    {"path": "10.0.0.10:/share", "is_admin_only": False, "preferred": True},
    {"path": "10.0.0.20:/share", "is_admin_only": False, "preferred": False},
]


class FakeManila:
    """Records every call; shares and rules in dicts; rules settle to `rule_state` on the next list."""

    def __init__(self, locations=None, share_status="available", rule_state="active", metadata=None) -> None:
        self.calls: List[Tuple[str, str, Any]] = []
        self.shares: Dict[str, dict] = {}
        self.rules: Dict[str, dict] = {}
        self.locations = LOCATIONS if locations is None else locations
        self.share_status, self.rule_state = share_status, rule_state
        self.metadata = metadata or {}
        self.ids = (str(uuid.UUID(int=i)) for i in itertools.count(1))

    def request(self, method: str, path: str, body: Optional[dict] = None, params: Optional[dict] = None):
        self.calls.append((method, path, body))
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/shares") or (method, path) == ("GET", "/shares/detail"):
            return 200, {"shares": list(self.shares.values())}
        if (method, path) == ("POST", "/shares"):
            share = {**body["share"], "id": next(self.ids), "status": "creating"}
            share["metadata"] = {**share["metadata"], **self.metadata}
            self.shares[share["id"]] = share
            return 202, {"share": dict(share)}
        if parts[0] == "shares" and len(parts) == 2:
            share = self.shares.get(parts[1])
            if share is None:
                return 404, {"itemNotFound": {"message": "not found", "code": 404}}
            if method == "DELETE":
                del self.shares[parts[1]]
                return 202, {}
            share["status"] = self.share_status
            return 200, {"share": dict(share)}
        if parts[0] == "shares" and parts[2:] == ["export_locations"]:
            return 200, {"export_locations": self.locations}
        if parts[0] == "shares" and parts[2:] == ["action"]:
            if "allow_access" in body:
                rule = {**body["allow_access"], "id": next(self.ids), "share_id": parts[1], "state": "queued_to_apply"}
                self.rules[rule["id"]] = rule
                return 200, {"access": rule}
            self.rules[body["deny_access"]["access_id"]]["state"] = "queued_to_deny"
            return 202, {}
        if path == "/share-access-rules":
            for rule in list(self.rules.values()):
                if rule["state"] == "queued_to_deny":
                    del self.rules[rule["id"]]
                elif rule["state"] == "queued_to_apply":
                    rule["state"] = self.rule_state
            return 200, {"access_list": [r for r in self.rules.values() if r["share_id"] == params["share_id"]]}
        if path == "/messages":
            return 200, {"messages": [{"user_message": "update access rules: the backend said no\x1b[31m"}]}
        raise AssertionError(f"unexpected call {method} {path}")

    def posted(self, action: str) -> List[dict]:
        return [body[action] for method, path, body in self.calls if body and action in body]


def driver(fake: FakeManila, **options: str) -> ManilaDriver:
    d = make_driver(
        "manila", {"auth": "noauth", "endpoint": "http://m/v2", "project": "abc", "timeout": "5", **options}
    )
    d.http = fake
    d.do_setup({})
    return d


FS = FsSpec("home", "p1", 1500 * (1 << 20))


@pytest.mark.parametrize("size, gib", [(1, 1), (GIB, 1), (GIB + 1, 2), (1500 * (1 << 20), 2), (10 * GIB, 10), (0, 1)])
def test_sizes_are_whole_gib_rounded_up(size, gib):
    assert size_gib(size) == gib


def test_create_sends_type_protocol_size_and_tag_and_returns_the_preferred_user_export():
    fake = FakeManila()
    d = driver(fake, share_type="gold")
    assert d.create(FS) == "10.0.0.10:/share"
    (share,) = fake.shares.values()
    assert (share["share_proto"], share["size"], share["share_type"]) == ("NFS", 2, "gold")
    assert share["metadata"] == {TAG: "p1/home"}
    assert d.inventory() == {"home"}
    assert d.fs_type == "nfs"


def test_export_choice_falls_back_to_the_first_user_location_then_the_first():
    assert choose_export([LOCATIONS[0], LOCATIONS[2]], "nfs") == "10.0.0.20:/share"
    assert choose_export([LOCATIONS[0]], "nfs") == "11.0.0.11:/share"
    with pytest.raises(DriverError, match="no export location"):
        choose_export([], "nfs")


@pytest.mark.parametrize("path", ["10.0.0.1:/a,b", "10.0.0.1:/a b", "10.0.0.1:/a\n/b", "host:relative", "x" * 2000])
def test_an_export_the_agent_would_refuse_never_lands(path):
    with pytest.raises(DriverError, match="export location"):
        choose_export([{"path": path, "is_admin_only": False, "preferred": True}], "nfs")


def test_a_share_in_error_is_removed_and_reported_with_manilas_message():
    fake = FakeManila(share_status="error")
    with pytest.raises(DriverError, match="in error: update access rules: the backend said no") as e:
        driver(fake).create(FS)
    assert "\x1b" not in str(e.value)  # Manila's words are cleaned before they reach a status
    assert fake.shares == {}


def test_create_refuses_a_share_already_tagged_for_the_filesystem():
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    with pytest.raises(DriverError, match="already exists"):
        d.create(FS)


def test_set_access_keeps_the_ip_rules_equal_to_the_wanted_set():
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    d.set_access(FS, {"192.0.2.1", "192.0.2.2"})
    assert sorted(r["access_to"] for r in fake.rules.values()) == ["192.0.2.1", "192.0.2.2"]
    fake.calls.clear()
    d.set_access(FS, {"192.0.2.2", "2001:db8::5"})
    assert [a["access_to"] for a in fake.posted("allow_access")] == ["2001:db8::5"]
    assert len(fake.posted("deny_access")) == 1
    assert sorted(r["access_to"] for r in fake.rules.values()) == ["192.0.2.2", "2001:db8::5"]
    assert all(r["state"] == "active" and r["access_level"] == "rw" for r in fake.rules.values())
    fake.calls.clear()
    d.set_access(FS, {"192.0.2.2", "2001:db8::5"})  # the same set twice: nothing to change
    assert not fake.posted("allow_access") and not fake.posted("deny_access")
    d.set_access(FS, set())
    assert fake.rules == {}


def test_rules_of_other_types_are_left_alone_and_blocks_are_denied():
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    (share_id,) = fake.shares
    fake.rules["c"] = {"id": "c", "share_id": share_id, "access_type": "cephx", "access_to": "alice", "state": "active"}
    fake.rules["b"] = {"id": "b", "share_id": share_id, "access_type": "ip", "access_to": "192.0.2.0/24",
                       "access_level": "rw", "state": "active"}  # fmt: skip
    d.set_access(FS, {"192.0.2.9"})
    assert sorted(r["access_to"] for r in fake.rules.values()) == ["192.0.2.9", "alice"]


def test_a_rule_in_error_is_reported_and_tried_again_next_time():
    fake = FakeManila(rule_state="error")
    d = driver(fake)
    d.create(FS)
    with pytest.raises(DriverError, match=r"rule for 192\.0\.2\.1 in error: update access rules"):
        d.set_access(FS, {"192.0.2.1"})
    fake.rule_state = "active"
    d.set_access(FS, {"192.0.2.1"})
    assert [r["state"] for r in fake.rules.values()] == ["active"]


@pytest.mark.parametrize("address", ["192.0.2.0/24", "192.0.2.1,*", "fe80::1%eth0", "2001:DB8::1", "127.0.0.1", ""])
def test_addresses_are_checked_before_they_reach_a_rule(address):
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    with pytest.raises(DriverError, match="access list refused"):
        d.set_access(FS, {address})
    assert not fake.posted("allow_access")


def test_delete_removes_rules_then_the_share_and_missing_is_fine():
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    d.set_access(FS, {"192.0.2.1"})
    d.delete(FS)
    assert fake.shares == {} and fake.rules == {}
    d.delete(FS)  # already gone


def test_the_reconciles_orphan_delete_matches_the_name_in_any_project():
    fake = FakeManila()
    d = driver(fake)
    d.create(FS)
    d.delete(FsSpec("home", "", 0))
    assert fake.shares == {}


def test_cephfs_shares_carry_their_mount_options_checked_by_the_agents_mounter():
    fake = FakeManila(locations=[{"path": "192.0.2.5:6789,192.0.2.6:6789:/volumes/_nogroup/x", "preferred": False}],
                      metadata={"__mount_options": "fs=cephfs"})  # fmt: skip
    d = driver(fake, share_proto="cephfs")
    assert d.fs_type == "cephfs"
    assert d.create(FS) == "192.0.2.5:6789,192.0.2.6:6789:/volumes/_nogroup/x"
    assert d.mount_options(FS) == ("fs=cephfs",)
    assert (fake.shares.popitem()[1]["share_proto"]) == "CEPHFS"


@pytest.mark.parametrize("value", ["secret=AQB", "fs=a b", "fs=x,unknown=1", "name=$(reboot)"])
def test_bad_mount_options_from_manila_are_refused(value):
    with pytest.raises(DriverError, match="__mount_options"):
        mount_options_of({"__mount_options": value}, "cephfs")


def test_mount_options_mean_nothing_to_nfs():
    assert mount_options_of({"__mount_options": "fs=cephfs"}, "nfs") == ()


def test_setup_refuses_what_sharedfs_cannot_mount_or_reach():
    with pytest.raises(DriverError, match="share_proto 'CIFS'"):
        driver(FakeManila(), share_proto="CIFS")
    with pytest.raises(DriverError, match="project=ID"):
        make_driver("manila", {"auth": "noauth", "endpoint": "http://m/v2", "project": "admin"}).do_setup({})
    with pytest.raises(DriverError, match="needs auth_url"):
        make_driver("manila", {}).do_setup({})
