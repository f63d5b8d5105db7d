"""A hostile tenant against a real API process: values that would land in a storage ACL or a path."""

from __future__ import annotations

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
