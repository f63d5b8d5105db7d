"""--auth keystone through real Keystone tokens: the role matrix for two projects, exact codes, no cross-project leak."""

from __future__ import annotations

import pytest

from devtools.apiserver import ApiServer

GL = {"export": "gl1:/vol", "fs_type": "glusterfs", "size": "1Gb"}
WHO = ["admin", "a-member", "a-reader", "b-member", "b-reader", "inst-a", "inst-b", "sfs-project", "bogus", "none"]


class Cloud:
    """sharedfs-api with --auth keystone; projects alpha (A) and beta (B) from Keystone."""

    def __init__(self, keystone, server: ApiServer) -> None:
        self.server = server
        self.a, self.b = keystone.project("alpha"), keystone.project("beta")
        self.tokens = {
            "admin": keystone.token("admin", "admin", password="admin-secret"),
            "a-member": keystone.token("alpha-member", "alpha"),
            "a-reader": keystone.token("alpha-reader", "alpha"),
            "b-member": keystone.token("beta-member", "beta"),
            "b-reader": keystone.token("beta-reader", "beta"),
            # Instances have no Keystone identity: their tokens stay sharedfs's own.
            "inst-a": server.token("instance", self.a, "i1"),
            "inst-b": server.token("instance", self.b, "j1"),
            # A sharedfs project token means nothing once Keystone decides who is who.
            "sfs-project": server.token("project", self.a),
            "bogus": "not-a-token",
            "none": None,
        }

    def call(self, method, path, who="admin", **kw):
        return self.server.call(method, path.format(A=self.a, B=self.b), self.tokens[who], **kw)


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    base = tmp_path_factory.mktemp("api-keystone")
    config = keystone.write_config(base / "openstack.conf")
    server = ApiServer(base, extra_args=["--auth", "keystone", "--openstack-config", str(config)]).start()
    c = Cloud(keystone, server)
    for tenant, instance, address in (("{A}", "i1", "10.9.0.1"), ("{B}", "j1", "10.9.1.1")):
        assert c.call("PUT", f"/v1.1/{tenant}/os-instances/{instance}",
                      json={"instance": {"addresses": [address]}}).status_code == 201  # fmt: skip
    assert c.call("PUT", "/v1.1/{A}/os-filesystem/ks-show", json={"fs_entry": GL}).status_code == 201
    assert c.call("PUT", "/v1.1/{B}/os-filesystem/ks-beta", json={"fs_entry": GL}).status_code == 201
    yield c
    server.stop()


def fresh_fs(cloud, name):
    assert cloud.call("PUT", f"/v1.1/{{A}}/os-filesystem/{name}", json={"fs_entry": GL}).status_code in (200, 201)


READ = dict(admin=200, **{"a-member": 200, "a-reader": 200, "b-member": 403, "b-reader": 403, "inst-a": 403,
                          "inst-b": 403, "sfs-project": 401, "bogus": 401, "none": 401})  # fmt: skip
WRITE = {**READ, "a-reader": 403}

# (name, method, path, body, setup, expected per caller); {r} makes names unique per caller.
CASES = [
    ("list filesystems", "GET", "/v1.1/{A}/os-filesystem", None, None, READ),
    ("show filesystem", "GET", "/v1.1/{A}/os-filesystem/ks-show", None, None, READ),
    ("show missing filesystem", "GET", "/v1.1/{A}/os-filesystem/ks-none", None, None,
     {**READ, "admin": 404, "a-member": 404, "a-reader": 404}),
    ("filesystem instances", "GET", "/v1.1/{A}/os-filesystem/ks-show/instances", None, None, READ),
    ("list instances", "GET", "/v1.1/{A}/os-instances", None, None, READ),
    ("instance view", "GET", "/v1.1/{A}/os-instances/i1/filesystems", None, None, {**READ, "inst-a": 200}),
    ("create static filesystem", "PUT", "/v1.1/{A}/os-filesystem/ks-new-{r}", {"fs_entry": GL}, None,
     {**WRITE, "admin": 201, "a-member": 403}),  # static exports: admin only, as with built-in tokens
    ("delete filesystem", "DELETE", "/v1.1/{A}/os-filesystem/ks-del-{r}", None,
     lambda c, r: fresh_fs(c, f"ks-del-{r}"), {**WRITE, "admin": 202, "a-member": 202}),
    ("connect instance", "PUT", "/v1.1/{A}/os-filesystem/ks-con-{r}/instances/i1", None,
     lambda c, r: fresh_fs(c, f"ks-con-{r}"), {**WRITE, "admin": 201, "a-member": 201}),
    ("register instance", "PUT", "/v1.1/{A}/os-instances/k-{r}", {"instance": {"addresses": []}}, None,
     {**WRITE, "admin": 201, "a-member": 201}),
    ("report state", "PUT", "/v1.1/{A}/os-instances/i1/filesystems/ks-show/state", {"state": "mounted"},
     lambda c, r: c.call("PUT", "/v1.1/{A}/os-filesystem/ks-show/instances/i1"),  # an instance reports only what it reaches
     {**WRITE, "inst-a": 200}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_role_matrix_through_keystone_tokens(cloud, case):
    _, method, path, body, setup, expected = case
    assert set(expected) == set(WHO)
    got = {}
    for who in WHO:
        if setup:
            setup(cloud, who)
        response = cloud.call(method, path.replace("{r}", who), who, json=body)
        got[who] = response.status_code
        if response.status_code >= 400:
            assert response.json()["error"]["message"], (who, response.text)
    assert got == expected


def test_no_existence_leak_across_projects(cloud):
    """Beta's member gets the same answer for alpha's filesystem that exists and one that does not."""
    for who in ("b-member", "b-reader"):
        there = cloud.call("GET", "/v1.1/{A}/os-filesystem/ks-show", who)
        missing = cloud.call("GET", "/v1.1/{A}/os-filesystem/ks-none", who)
        assert (there.status_code, missing.status_code) == (403, 403)
        assert there.json()["error"]["message"].replace("ks-show", "") == missing.json()["error"]["message"].replace(
            "ks-none", "")  # fmt: skip
    # and beta's own calls stay beta's: its member sees beta's filesystem, never alpha's
    names = [fs["name"] for fs in cloud.call("GET", "/v1.1/{B}/os-filesystem", "b-member").json()["fs_entries"]]
    assert "ks-beta" in names and "ks-show" not in names


def test_vendordata_enrolls_for_novas_service_user_only(cloud, keystone):
    """Nova's DynamicJSON body, as Nova sends it; the answer's token is the instance's own."""
    body = {"project-id": cloud.a, "instance-id": "vd-1", "image-id": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
            "user-data": None, "hostname": "vd-1", "metadata": {}, "boot-roles": "member,reader"}  # fmt: skip
    nova = keystone.token("nova", "service")
    for who in ("a-member", "a-reader", "b-member"):
        assert cloud.call("POST", "/v1.1/vendordata", who, json=body).status_code == 403, who
    for who in ("bogus", "none", "sfs-project", "inst-a"):  # not Keystone tokens
        assert cloud.call("POST", "/v1.1/vendordata", who, json=body).status_code == 401, who
    answer = cloud.server.call("POST", "/v1.1/vendordata", nova, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert (data["project"], data["instance_id"], data["api_url"]) == (cloud.a, "vd-1", cloud.server.url)
    view = f"/v1.1/{cloud.a}/os-instances/vd-1/filesystems"
    assert cloud.server.call("GET", view, data["token"]).status_code == 200
    assert cloud.server.call("GET", f"/v1.1/{cloud.b}/os-filesystem", data["token"]).status_code == 403
