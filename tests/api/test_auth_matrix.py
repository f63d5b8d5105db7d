"""Every endpoint x every role x own and foreign tenant / instance, asserting the exact status code."""

from __future__ import annotations

import pytest

GL = {"export": "gl1:/vol", "fs_type": "glusterfs", "size": "1Gb"}
ROLES = ["admin", "proj1", "proj2", "inst1", "inst2", "instj", "bogus", "none"]


def fresh_fs(world, name, **extra):
    assert world.put_fs("p1", name, **{**GL, **extra}).status_code in (200, 201)


def fresh_instance(world, name):
    assert world.register("p1", name).status_code in (200, 201)


def connected(world, fs, instance="i1"):
    fresh_fs(world, fs)
    world.call("PUT", f"/v1.1/p1/os-filesystem/{fs}/instances/{instance}")


# (name, method, path, body, setup, expected code per role). Paths use tenant p1, instance i1;
# {r} makes names unique per role so one role's success does not change another's answer.
CASES = [
    ("list filesystems", "GET", "/v1.1/p1/os-filesystem", None, None,
     dict(admin=200, proj1=200, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("show filesystem", "GET", "/v1.1/p1/os-filesystem/mx-show", None, lambda w, r: fresh_fs(w, "mx-show"),
     dict(admin=200, proj1=200, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("create static filesystem", "PUT", "/v1.1/p1/os-filesystem/mx-new-{r}", {"fs_entry": GL}, None,
     dict(admin=201, proj1=403, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("create global filesystem", "PUT", "/v1.1/p1/os-filesystem/mx-glob-{r}", {"fs_entry": {**GL, "scope": "global"}},
     None, dict(admin=201, proj1=403, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("delete filesystem", "DELETE", "/v1.1/p1/os-filesystem/mx-del-{r}", None, lambda w, r: fresh_fs(w, f"mx-del-{r}"),
     dict(admin=202, proj1=202, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("list fs instances", "GET", "/v1.1/p1/os-filesystem/mx-show/instances", None, lambda w, r: fresh_fs(w, "mx-show"),
     dict(admin=200, proj1=200, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("connect instance", "PUT", "/v1.1/p1/os-filesystem/mx-con-{r}/instances/i1", None,
     lambda w, r: fresh_fs(w, f"mx-con-{r}"),
     dict(admin=201, proj1=201, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("disconnect instance", "DELETE", "/v1.1/p1/os-filesystem/mx-dis-{r}/instances/i1", None,
     lambda w, r: connected(w, f"mx-dis-{r}"),
     dict(admin=202, proj1=202, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("list instances", "GET", "/v1.1/p1/os-instances", None, None,
     dict(admin=200, proj1=200, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("register instance", "PUT", "/v1.1/p1/os-instances/i1", {"instance": {"addresses": ["10.9.0.1"]}}, None,
     dict(admin=200, proj1=200, proj2=403, inst1=200, inst2=403, instj=403, bogus=401, none=401)),
    ("deregister instance", "DELETE", "/v1.1/p1/os-instances/mx-gone-{r}", None,
     lambda w, r: fresh_instance(w, f"mx-gone-{r}"),
     dict(admin=202, proj1=202, proj2=403, inst1=403, inst2=403, instj=403, bogus=401, none=401)),
    ("instance view", "GET", "/v1.1/p1/os-instances/i1/filesystems", None, None,
     dict(admin=200, proj1=200, proj2=403, inst1=200, inst2=403, instj=403, bogus=401, none=401)),
    ("report state", "PUT", "/v1.1/p1/os-instances/i1/filesystems/mx-show/state", {"state": "mounted"},
     lambda w, r: connected(w, "mx-show"),  # an instance reports only what it reaches
     dict(admin=200, proj1=200, proj2=403, inst1=200, inst2=403, instj=403, bogus=401, none=401)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_role(world, case):
    _, method, path, body, setup, expected = case
    assert set(expected) == set(ROLES)
    got = {}
    for role in ROLES:
        if setup:
            setup(world, role)
        response = world.call(method, path.format(r=role), role, json=body)
        got[role] = response.status_code
        if response.status_code >= 400:
            assert response.json()["error"]["message"], (role, response.text)
    assert got == expected


def test_foreign_tenant_paths_are_refused_for_project_tokens(world):
    """The mirror image: p2's token on p1's resources (above), p1's token on p2's."""
    assert world.put_fs("p2", "mx-p2", **GL).status_code == 201
    for method, path in [("GET", "/v1.1/p2/os-filesystem"), ("GET", "/v1.1/p2/os-filesystem/mx-p2"),
                         ("DELETE", "/v1.1/p2/os-filesystem/mx-p2"), ("GET", "/v1.1/p2/os-instances/j1/filesystems"),
                         ("PUT", "/v1.1/p2/os-filesystem/mx-p2/instances/j1")]:  # fmt: skip
        assert world.call(method, path, "proj1").status_code == 403, path
        assert world.call(method, path, "inst1").status_code == 403, path
    assert world.call("GET", "/v1.1/p2/os-filesystem/mx-p2", "proj2").status_code == 200
