"""POST /v1.1/vendordata with built-in tokens: Nova's DynamicJSON body, the shared secret, a fresh instance token."""

from __future__ import annotations

import statistics
import time

import pytest

from devtools.apiserver import ApiServer

SECRET = "vendordata-shared-secret-for-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("api-vendordata")
    (base / "secret").write_text(SECRET + "\n")
    api = ApiServer(base, extra_args=["--vendordata-secret-file", str(base / "secret"),
                                      "--public-url", "https://sharedfs.example:8776"]).start()  # fmt: skip
    yield api
    api.stop()


def body(instance, project="p1"):
    return {"project-id": project, "instance-id": instance, "image-id": "img", "user-data": None,
            "hostname": instance, "metadata": {"role": "web"}, "boot-roles": "member"}  # fmt: skip


def test_the_secret_enrolls_and_the_token_is_the_instances(server):
    admin = server.token("admin")
    assert server.call("POST", "/v1.1/vendordata", None, json=body("v1")).status_code == 401
    assert server.call("POST", "/v1.1/vendordata", "wrong", json=body("v1")).status_code == 401
    assert server.call("POST", "/v1.1/vendordata", admin, json=body("v1")).status_code == 401  # only the secret
    answer = server.call("POST", "/v1.1/vendordata", SECRET, json=body("v1"))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data == {"api_url": "https://sharedfs.example:8776", "token": data["token"], "project": "p1",
                    "instance_id": "v1", "ca": None}  # fmt: skip
    assert server.call("GET", "/v1.1/p1/os-instances/v1/filesystems", data["token"]).status_code == 200
    assert server.call("GET", "/v1.1/p1/os-instances/other/filesystems", data["token"]).status_code == 403
    listed = server.call("GET", "/v1.1/p1/os-instances", admin).json()["instances"]
    entry = {e["id"]: e for e in listed}["v1"]
    assert {**entry, "last_seen": None} == {"id": "v1", "project": "p1", "addresses": [], "last_seen": None}
    assert entry["last_seen"] is not None  # it GOT its view above


def test_nova_places_the_instance_and_a_bad_body_is_refused(server):
    # Nova is the cloud: where it says the instance is wins over an earlier registration
    # (invariant 17); the earlier project's token for it stops working.
    first = server.call("POST", "/v1.1/vendordata", SECRET, json=body("v2", "p1"))
    assert first.status_code == 200
    assert server.call("POST", "/v1.1/vendordata", SECRET, json=body("v2", "p2")).status_code == 200
    old = server.call("GET", "/v1.1/p1/os-instances/v2/filesystems", first.json()["token"])
    assert old.status_code == 401, old.text
    assert server.call("POST", "/v1.1/vendordata", SECRET, json={"instance-id": "v3"}).status_code == 400
    assert server.call("POST", "/v1.1/vendordata", SECRET, json=body("../x")).status_code == 400


def test_latency_vendordata_post_to_token(server):
    """Figures for the record: Nova's POST -> the answer with a fresh token, a new instance each time."""
    took = []
    for i in range(50):
        start = time.monotonic()
        answer = server.call("POST", "/v1.1/vendordata", SECRET, json=body(f"lat-{i}"))
        took.append(time.monotonic() - start)
        assert answer.status_code == 200 and answer.json()["token"]
    took.sort()
    print(f"\nvendordata POST -> token: median {statistics.median(took) * 1000:.1f} ms, "
          f"p99 {took[int(len(took) * 0.99) - 1] * 1000:.1f} ms (n={len(took)}, SQLite, one process)", end="")  # fmt: skip
    assert statistics.median(took) < 1.0
