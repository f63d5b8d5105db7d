"""Every os-filesystem call over real HTTP against a server process: codes and bodies as docs/api.md says."""

from __future__ import annotations

import pytest

GL = {"export": "gl1:/vol", "fs_type": "glusterfs"}


def test_create_then_identical_then_conflict(world):
    created = world.put_fs("p1", "data", scope="project", mount_point="/data", mount_options=["acl"], **GL)
    assert created.status_code == 201
    entry = created.json()["fs_entry"]
    assert entry == {"name": "data", "size": "4Gb", "scope": "project", "project": "p1", "fs_type": "glusterfs",
                     "mount_point": "/data", "mount_options": ["acl"], "export": "gl1:/vol",
                     "status": "available", "status_detail": ""}  # fmt: skip
    again = world.put_fs("p1", "data", scope="project", mount_point="/data", mount_options=["acl"], **GL)
    assert (again.status_code, again.json()["fs_entry"]) == (200, entry)
    conflict = world.put_fs("p1", "data", scope="project", mount_point="/other", **GL)
    assert conflict.status_code == 409
    assert "already exists" in conflict.json()["error"]["message"]


def test_list_get_delete(world):
    world.put_fs("p1", "tmpfs1", **GL)
    names = [e["name"] for e in world.call("GET", "/v1.1/p1/os-filesystem").json()["fs_entries"]]
    assert "tmpfs1" in names
    assert world.call("GET", "/v1.1/p1/os-filesystem/tmpfs1").json()["fs_entry"]["name"] == "tmpfs1"
    gone = world.call("DELETE", "/v1.1/p1/os-filesystem/tmpfs1")
    assert (gone.status_code, gone.json()["fs_entry"]["status"]) == (202, "deleting")
    missing = world.call("GET", "/v1.1/p1/os-filesystem/tmpfs1")
    assert missing.status_code == 404 and "not found" in missing.json()["error"]["message"]
    assert world.call("DELETE", "/v1.1/p1/os-filesystem/tmpfs1").status_code == 404


@pytest.mark.parametrize("size, stored", [("4Gb", "4Gb"), ("80Gb", "80Gb"), ("512Mb", "512Mb"), ("1Tb", "1Tb"),
                                          ("4gb", "4Gb"), ("512MB", "512Mb"), ("1TB", "1Tb"), ("2GiB", "2Gb"),
                                          ("1.5Gb", "1536Mb")])  # fmt: skip
def test_seed_sizes_are_accepted(world, size, stored):
    name = "size" + str(abs(hash(size)) % 10_000)
    response = world.put_fs("p1", name, size=size, **GL)
    assert response.status_code == 201, response.text
    assert response.json()["fs_entry"]["size"] == stored  # stored canonical


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"size": "4Xb"}, "fs_entry.size"),
        ({"size": "0Gb"}, "fs_entry.size"),
        ({"size": "-1Gb"}, "fs_entry.size"),
        ({"size": 4}, "fs_entry.size"),
        ({"size": "4Gb", "scope": "world"}, "fs_entry.scope"),
        ({"size": "4Gb", "mount_point": "/etc"}, "system directory /etc"),
        ({"size": "4Gb", "mount_point": "/mnt/../etc"}, "'..'"),
        ({"size": "4Gb", "mount_point": "/mnt/a\nb"}, "control characters"),
        ({"size": "4Gb", "mount_options": ["acl,suid"]}, "characters"),
        ({"size": "4Gb", "unknown": 1}, "fs_entry.unknown"),
        ({"size": "4Gb", "status": "available"}, "fs_entry.status"),
        ({"size": "4Gb", "name": "other"}, "differs from the name in the URL"),
        ({"size": "4Gb", "project": "p2"}, "differs from the tenant"),
        ({"size": "4Gb", "export": "gl1:/v x"}, "fs_entry.export"),
        ({"size": "4Gb"}, "fs_entry.export is required"),  # this server runs the static driver
    ],
)
def test_invalid_entries_get_400_naming_the_field(world, entry, words):
    if "export" not in entry and words != "fs_entry.export is required":
        entry = {**entry, **GL}
    response = world.call("PUT", "/v1.1/p1/os-filesystem/bad", json={"fs_entry": entry})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]
    assert world.call("GET", "/v1.1/p1/os-filesystem/bad").status_code == 404  # nothing was stored


@pytest.mark.parametrize(
    "body, headers, code, words",
    [
        (b"{bad json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"[]", {"Content-Type": "application/json"}, 400, "body"),
        (b'{"fs_entry": "x"}', {"Content-Type": "application/json"}, 400, "fs_entry"),
        (b'{"size": "4Gb"}', {"Content-Type": "application/json"}, 400, "fs_entry"),
        (b'{"fs_entry": {"size": "4Gb"}}', {"Content-Type": "text/plain"}, 400, "Content-Type: application/json"),
        (b"x" * 70_000, {"Content-Type": "application/json"}, 413, "larger than"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(world, body, headers, code, words):
    response = world.call("PUT", "/v1.1/p1/os-filesystem/bad", data=body, headers=headers)
    assert response.status_code == code, response.text
    assert words in response.json()["error"]["message"]


def test_bad_names_in_the_url(world):
    assert (
        world.call("PUT", "/v1.1/p1/os-filesystem/a%20b", json={"fs_entry": {"size": "1Gb", **GL}}).status_code == 400
    )
    assert world.call("GET", "/v1.1/p!/os-filesystem").status_code == 400


def test_connect_list_disconnect_and_state(world):
    world.put_fs("p1", "scratch", mount_point="/scratch", **GL)
    connected = world.call("PUT", "/v1.1/p1/os-filesystem/scratch/instances/i1")
    assert (connected.status_code, connected.json()) == (201, {"instance": {"id": "i1"}})
    assert world.call("PUT", "/v1.1/p1/os-filesystem/scratch/instances/i1").status_code == 200
    assert world.call("PUT", "/v1.1/p1/os-filesystem/scratch/instances/nope").status_code == 404
    assert world.call("PUT", "/v1.1/p1/os-filesystem/scratch/instances/j1").status_code == 404  # other project

    listed = world.call("GET", "/v1.1/p1/os-filesystem/scratch/instances").json()["instances"]
    assert [(i["id"], i["mount_state"]) for i in listed] == [("i1", "pending")]
    report = world.call("PUT", "/v1.1/p1/os-instances/i1/filesystems/scratch/state", "inst1",
                        json={"state": "mounted", "detail": ""})  # fmt: skip
    assert report.status_code == 200
    listed = world.call("GET", "/v1.1/p1/os-filesystem/scratch/instances").json()["instances"]
    assert listed[0]["mount_state"] == "mounted" and listed[0]["updated_at"]
    bad_state = world.call("PUT", "/v1.1/p1/os-instances/i1/filesystems/scratch/state", "inst1", json={"state": "ok"})
    assert bad_state.status_code == 400

    assert world.call("DELETE", "/v1.1/p1/os-filesystem/scratch/instances/i1").status_code == 202
    assert world.call("DELETE", "/v1.1/p1/os-filesystem/scratch/instances/i1").status_code == 404
    # Still listed, as no longer connected, until its agent reports it let go.
    (left,) = world.call("GET", "/v1.1/p1/os-filesystem/scratch/instances").json()["instances"]
    assert (left["id"], left["connected"], left["mount_state"]) == ("i1", False, "mounted")


def test_scopes_decide_the_effective_set(world):
    world.put_fs("p1", "inst-only", **GL)
    world.put_fs("p1", "proj-wide", scope="project", **GL)
    world.put_fs("p2", "elsewhere", scope="project", **GL)
    world.put_fs("p2", "everyone", scope="global", **GL)
    world.call("PUT", "/v1.1/p1/os-filesystem/inst-only/instances/i1")

    def names(tenant, instance, who):
        r = world.call("GET", f"/v1.1/{tenant}/os-instances/{instance}/filesystems", who)
        assert r.status_code == 200, r.text
        return {e["name"] for e in r.json()["filesystems"]}

    i1, i2, j1 = names("p1", "i1", "inst1"), names("p1", "i2", "inst2"), names("p2", "j1", "instj")
    assert {"inst-only", "proj-wide", "everyone"} <= i1 and "elsewhere" not in i1
    assert {"proj-wide", "everyone"} <= i2 and "inst-only" not in i2
    assert {"elsewhere", "everyone"} <= j1 and not {"proj-wide", "inst-only"} & j1
    # Project scope reaches instances registered later too.
    world.register("p1", "i3", "10.9.0.3")
    token = world.server.token("instance", "p1", "i3")
    later = world.server.call("GET", "/v1.1/p1/os-instances/i3/filesystems", token).json()["filesystems"]
    assert {"proj-wide", "everyone"} <= {e["name"] for e in later}
    # Global ones are listed in every project and clash with no name.
    assert "everyone" in [e["name"] for e in world.call("GET", "/v1.1/p1/os-filesystem", "proj1").json()["fs_entries"]]
    assert world.put_fs("p1", "everyone", **GL).status_code == 409


def test_instances_register_and_cannot_move(world):
    assert world.register("p1", "mover", "10.9.0.9").status_code == 201
    assert world.register("p1", "mover", "10.9.0.9").status_code == 200
    assert world.register("p2", "mover").status_code == 409
    assert world.register("p1", "mover", "300.1.1.1").status_code == 400
    listed = world.call("GET", "/v1.1/p1/os-instances").json()["instances"]
    assert {"id": "mover", "project": "p1", "addresses": ["10.9.0.9"], "last_seen": None} in listed
    assert world.call("DELETE", "/v1.1/p1/os-instances/mover").status_code == 202
    assert world.call("DELETE", "/v1.1/p1/os-instances/mover").status_code == 404


def test_openapi_document(world):
    doc = world.call("GET", "/openapi.json", "none").json()
    paths = doc["paths"]
    assert "/v1.1/{tenant}/os-filesystem/{name}" in paths
    assert "/v1.1/{tenant}/os-instances/{instance_id}/filesystems" in paths
