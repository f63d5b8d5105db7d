"""Keystone mode's decisions: the in-code policy defaults reproduce the role matrix; a policy file overrides them."""

from __future__ import annotations

import pytest

from sharedfs_api import keystone
from sharedfs_api.auth import Principal
from sharedfs_api.errors import Forbidden, Unauthorized
from sharedfs_api.keystone import Identity, KeystoneAuth

LIST = ("GET", "/v1.1/{tenant}/os-filesystem")
CREATE = ("PUT", "/v1.1/{tenant}/os-filesystem/{name}")
REPORT = ("PUT", "/v1.1/{tenant}/os-instances/{instance_id}/filesystems/{name}/state")

TOKENS = {  # Keystone's implied roles: admin -> member -> reader
    "admin": ("admin-project", ["admin", "member", "reader"]),
    "member": ("alpha", ["member", "reader"]),
    "reader": ("alpha", ["reader"]),
    "other-member": ("beta", ["member", "reader"]),
    "no-role": ("alpha", ["observer"]),
}
LOCAL = {"instance-token": Principal("instance", "alpha", "i1"), "project-token": Principal("project", "alpha")}


def make_auth(tmp_path, policy_yaml=None):
    config = tmp_path / "sharedfs.conf"
    lines = []
    if policy_yaml is not None:
        (tmp_path / "policy.yaml").write_text(policy_yaml)
        lines = ["[oslo_policy]", f"policy_file = {tmp_path / 'policy.yaml'}"]
    config.write_text("\n".join(lines) + "\n")
    auth = KeystoneAuth(str(config), LOCAL.get)

    def identify(token):
        if token not in TOKENS:
            return None
        project, roles = TOKENS[token]
        values = {"user_id": token, "project_id": project, "roles": roles, "system_scope": None}
        return Identity(token, project, frozenset(roles), values)

    auth.identify = identify
    return auth


def decide(auth, token, tenant, call):
    try:
        return auth.principal(token, tenant, *call)
    except (Forbidden, Unauthorized) as e:
        return e.status


@pytest.mark.parametrize("token, tenant, call, expected", [
    ("admin", "alpha", CREATE, Principal("admin")),
    ("admin", "beta", LIST, Principal("admin")),
    ("member", "alpha", LIST, Principal("project", "alpha")),
    ("member", "alpha", CREATE, Principal("project", "alpha")),
    ("member", "beta", LIST, 403),
    ("member", "beta", CREATE, 403),
    ("reader", "alpha", LIST, Principal("project", "alpha")),
    ("reader", "alpha", CREATE, 403),
    ("reader", "alpha", REPORT, 403),
    ("reader", "beta", LIST, 403),
    ("other-member", "alpha", LIST, 403),
    ("no-role", "alpha", LIST, 403),
    ("bogus", "alpha", LIST, 401),
    (None, "alpha", LIST, 401),
    ("instance-token", "alpha", REPORT, Principal("instance", "alpha", "i1")),
    ("project-token", "alpha", LIST, 401),  # project and admin come from Keystone in this mode
    ("member", "alpha", ("POST", "/v1.1/{tenant}/unknown"), 403),  # a call without a rule is refused
])  # fmt: skip
def test_defaults_reproduce_the_role_matrix(tmp_path, token, tenant, call, expected):
    assert decide(make_auth(tmp_path), token, tenant, call) == expected


def test_an_operator_policy_file_overrides_a_default(tmp_path):
    auth = make_auth(tmp_path, '"sharedfs:filesystem:create": "rule:context_is_admin"\n'
                               '"sharedfs:filesystem:list": "rule:context_is_admin or role:observer"\n')  # fmt: skip
    assert decide(auth, "member", "alpha", CREATE) == 403
    assert decide(auth, "admin", "alpha", CREATE) == Principal("admin")
    assert decide(auth, "no-role", "alpha", LIST) == Principal("project", "alpha")


def test_every_rule_is_documented_with_its_call():
    rules = {rule.name: rule for rule in keystone.list_rules()}
    assert {"context_is_admin", "project_member", "project_reader"} <= set(rules)
    for method, path in [LIST, CREATE, REPORT]:
        assert keystone.rule_for(method, path) in rules
