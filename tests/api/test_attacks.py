"""A hostile tenant against a real API process: values that would land in a storage ACL or a path."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("address", ["fe80::1%x,*", "10.0.0.1,*", "*", "0.0.0.0", "::", "127.0.0.1", "::1",
                                     "fe80::1", "224.0.0.1", "10.0.0.0/8", "::ffff:10.9.0.9"])  # fmt: skip
def test_an_instance_cannot_register_an_address_that_widens_an_acl(world, address):
    answer = world.register("p1", "i1", "10.9.0.1", address, who="inst1")
    assert answer.status_code == 400, answer.text
    assert "address" in answer.json()["error"]["message"]
    listed = world.call("GET", "/v1.1/p1/os-instances", "proj1").json()["instances"]
    assert next(i for i in listed if i["id"] == "i1")["addresses"] == ["10.9.0.1"]


def test_an_instance_registers_at_most_sixteen_addresses(world):
    too_many = [f"10.77.0.{n}" for n in range(1, 18)]
    answer = world.register("p1", "i2", *too_many, who="inst2")
    assert answer.status_code == 400, answer.text
    assert world.register("p1", "i2", *too_many[:16], who="inst2").status_code == 200
    assert world.register("p1", "i2", "10.9.0.2", who="inst2").status_code == 200


@pytest.mark.parametrize("mount_point", ["/home/ubuntu/.ssh", "/mnt/\u202eevil", "/mnt/a\u200bb"])
def test_mount_points_that_read_differently_or_hold_credentials_are_refused(world, mount_point):
    answer = world.put_fs("p1", "sneaky", "proj1", mount_point=mount_point)
    assert answer.status_code == 400, answer.text
    assert "mount_point" in answer.json()["error"]["message"]


GL = {"export": "gl1:/vol", "fs_type": "glusterfs"}


def test_a_project_cannot_take_or_detect_another_projects_instance_id(world):
    assert world.register("p2", "owned-by-p2", "10.9.1.7", who="proj2").status_code == 201
    taken = world.register("p1", "owned-by-p2", "10.9.0.7", who="proj1")
    assert world.register("p1", "retired-p1", "10.9.0.8", who="proj1").status_code == 201
    assert world.call("DELETE", "/v1.1/p1/os-instances/retired-p1", "proj1").status_code == 202
    retired_elsewhere = world.register("p2", "retired-p1", "10.9.1.8", who="proj2")
    # The same code and the same words, whatever the reason: no project name, no 403-vs-409.
    for answer, name in ((taken, "owned-by-p2"), (retired_elsewhere, "retired-p1")):
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["message"] == f"instance id {name!r} is not available"
    listed = world.call("GET", "/v1.1/p2/os-instances", "proj2").json()["instances"]
    assert {"id": "owned-by-p2", "project": "p2", "addresses": ["10.9.1.7"], "last_seen": None} in listed


def test_a_deregistered_instances_token_cannot_register_it_again(world):
    assert world.register("p1", "gone-vm", "10.9.0.20").status_code == 201
    token = world.server.token("instance", "p1", "gone-vm")
    assert world.call("DELETE", "/v1.1/p1/os-instances/gone-vm", "proj1").status_code == 202
    again = world.server.call("PUT", "/v1.1/p1/os-instances/gone-vm", token,
                              json={"instance": {"addresses": ["10.9.0.21"]}})  # fmt: skip
    assert again.status_code == 409, again.text
    assert again.json()["error"]["message"] == "instance id 'gone-vm' is not available"
    assert "gone-vm" not in [i["id"] for i in world.call("GET", "/v1.1/p1/os-instances", "proj1").json()["instances"]]


def test_an_instance_reports_only_for_filesystems_it_reaches(world):
    assert world.put_fs("p1", "not-for-i2", **GL).status_code == 201  # instance scope, i2 not connected
    assert world.put_fs("p2", "p2-only", scope="project", **GL).status_code == 201
    answers = {
        name: world.call("PUT", f"/v1.1/p1/os-instances/i2/filesystems/{name}/state", "inst2",
                         json={"state": "mounted", "detail": ""})  # fmt: skip
        for name in ("not-for-i2", "p2-only", "no-such-name")
    }
    for name, answer in answers.items():
        assert answer.status_code == 404, (name, answer.text)
        assert answer.json()["error"]["message"] == f"filesystem {name!r} not found in project 'p1'"
    states = world.call("GET", "/v1.1/p1/os-filesystem/not-for-i2/instances", "proj1").json()["instances"]
    assert states == []


def test_a_project_cannot_disconnect_another_projects_instance_from_a_global_filesystem(world):
    assert world.put_fs("p2", "shared-g", scope="global", **GL).status_code == 201
    assert world.call("PUT", "/v1.1/p2/os-filesystem/shared-g/instances/j1", "proj2").status_code == 201
    attack = world.call("DELETE", "/v1.1/p1/os-filesystem/shared-g/instances/j1", "proj1")
    assert attack.status_code == 404, attack.text
    assert world.call("PUT", "/v1.1/p2/os-filesystem/shared-g/instances/j1", "proj2").status_code == 200  # kept


def test_a_chunked_body_over_64_kib_gets_413(world):
    def chunks():
        for _ in range(20):
            yield b"x" * 4096

    answer = world.call("PUT", "/v1.1/p1/os-filesystem/chunky", "proj1", data=chunks(),
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 413, answer.text
    assert "larger than" in answer.json()["error"]["message"]


@pytest.mark.parametrize("size", ["4Gb" + " " * 40, " 4Gb", "4\tGb", "4Gb\x00", "4Gb\n", "1.001Kb"])
def test_sizes_with_whitespace_control_characters_or_no_whole_unit_are_refused(world, size):
    answer = world.put_fs("p1", "sized", "proj1", size=size, export="gl1:/v", fs_type="glusterfs")
    assert answer.status_code == 400, answer.text
    assert "size" in answer.json()["error"]["message"]


def test_sizes_are_stored_canonical(world):
    answer = world.put_fs("p1", "canon", size="4096mib", export="gl1:/v", fs_type="glusterfs")
    assert answer.status_code == 201, answer.text
    assert answer.json()["fs_entry"]["size"] == "4Gb"
    again = world.put_fs("p1", "canon", size="4Gb", export="gl1:/v", fs_type="glusterfs")
    assert again.status_code in (200, 201), again.text  # the same filesystem, not a conflict
    assert world.call("DELETE", "/v1.1/p1/os-filesystem/canon").status_code == 202


def test_a_report_detail_with_nul_and_escape_sequences_is_stored_escaped(world):
    assert world.put_fs("p1", "detailed", scope="project", export="gl1:/v", fs_type="glusterfs").ok
    detail = "mount failed\x00\x1b[2J\u202eevil\n"
    answer = world.call("PUT", "/v1.1/p1/os-instances/i1/filesystems/detailed/state", "inst1",
                        json={"state": "error", "detail": detail})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["detail"] == "mount failed\\x00\\x1b[2J\\u202eevil\\x0a"
    listed = world.call("GET", "/v1.1/p1/os-filesystem/detailed/instances", "proj1").text
    assert "\\u0000" not in listed and "\\u001b" not in listed and "\\\\x1b[2J" in listed
    assert world.call("DELETE", "/v1.1/p1/os-filesystem/detailed").status_code == 202


def test_openapi_states_the_status_codes_sent(world):
    document = world.call("GET", "/openapi.json").json()
    assert '"422"' not in str(document).replace("'", '"')
    put_fs = document["paths"]["/v1.1/{tenant}/os-filesystem/{name}"]["put"]["responses"]
    assert {"201", "400", "401", "403", "404", "409", "413"} <= set(put_fs)
    poll = document["paths"]["/v1.1/{tenant}/os-instances/{instance_id}/filesystems"]["get"]["responses"]
    assert {"200", "304", "400", "401", "403", "404", "503"} <= set(poll)


def test_instance_list_escapes_control_characters_in_stored_values(world):
    import sqlalchemy

    engine = sqlalchemy.create_engine(world.server.db_url)
    with engine.begin() as connection:  # a row written by hand or by an older version
        connection.execute(sqlalchemy.text("INSERT INTO instances (id, project, addresses_json, created_at) "
                                           "VALUES (:id, 'p1', :a, CURRENT_TIMESTAMP)"),
                           {"id": "evil\x1b]0;owned\x07", "a": json.dumps(["10.9.9.9\x1b[31m"])})  # fmt: skip
    try:
        listed = world.server.cli("instance", "list")
        assert "\x1b" not in listed and "\x07" not in listed
        assert "evil\\x1b]0;owned\\x07" in listed and "10.9.9.9\\x1b[31m" in listed
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DELETE FROM instances WHERE id LIKE 'evil%'"))
