"""Keystone mode: tokens validated by keystonemiddleware.auth_token, decisions by oslo.policy (in-code defaults).

The defaults reproduce the built-in role matrix: `admin` role -> admin anywhere; a project-scoped
token with `member` -> that project; `reader` -> the read-only calls of that project. An operator
overrides any rule in a policy file (`[oslo_policy] policy_file` in the config file). Instances
have no Keystone identity: their tokens stay sharedfs's own and are resolved by `local_tokens`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

import webob
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystonemiddleware import auth_token
from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_policy import policy

from .auth import Principal
from .errors import Forbidden, Unauthorized, Unavailable

__all__ = ["CATALOG_TYPE", "Identity", "KeystoneAuth", "SignedIn", "list_rules", "rule_for"]

log = logging.getLogger(__name__)

CATALOG_TYPE = "filesystem"  # the service type of sharedfs-api's Keystone catalog entry

READ = "rule:context_is_admin or rule:project_reader"
WRITE = "rule:context_is_admin or rule:project_member"

_BASE = [
    policy.RuleDefault("context_is_admin", "role:admin", description="Admin of every project."),
    policy.RuleDefault("project_member", "role:member and project_id:%(project_id)s",
                       description="A member-role token scoped to the URL's project."),  # fmt: skip
    # Keystone's default roles imply each other (admin -> member -> reader), so a member token carries reader too.
    policy.RuleDefault("project_reader", "role:reader and project_id:%(project_id)s",
                       description="A reader-role token scoped to the URL's project."),  # fmt: skip
]

# (rule, default check, method, route path): one per API call; a call without a rule is refused.
_CALLS: List[Tuple[str, str, str, str]] = [
    ("sharedfs:filesystem:list", READ, "GET", "/v1.1/{tenant}/os-filesystem"),
    ("sharedfs:filesystem:show", READ, "GET", "/v1.1/{tenant}/os-filesystem/{name}"),
    ("sharedfs:filesystem:create", WRITE, "PUT", "/v1.1/{tenant}/os-filesystem/{name}"),
    ("sharedfs:filesystem:delete", WRITE, "DELETE", "/v1.1/{tenant}/os-filesystem/{name}"),
    ("sharedfs:filesystem:instances", READ, "GET", "/v1.1/{tenant}/os-filesystem/{name}/instances"),
    ("sharedfs:filesystem:connect", WRITE, "PUT", "/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}"),
    ("sharedfs:filesystem:disconnect", WRITE, "DELETE", "/v1.1/{tenant}/os-filesystem/{name}/instances/{instance_id}"),
    ("sharedfs:instance:list", READ, "GET", "/v1.1/{tenant}/os-instances"),
    ("sharedfs:instance:register", WRITE, "PUT", "/v1.1/{tenant}/os-instances/{instance_id}"),
    ("sharedfs:instance:deregister", WRITE, "DELETE", "/v1.1/{tenant}/os-instances/{instance_id}"),
    ("sharedfs:instance:filesystems", READ, "GET", "/v1.1/{tenant}/os-instances/{instance_id}/filesystems"),
    ("sharedfs:instance:report_state", WRITE, "PUT", "/v1.1/{tenant}/os-instances/{instance_id}/filesystems/{name}/state"),
    # Nova's dynamic vendordata: Nova's service user (role `service`) enrolls an instance at boot.
    ("sharedfs:vendordata:enroll", "role:service or rule:context_is_admin", "POST", "/v1.1/vendordata"),
]  # fmt: skip

_BY_ROUTE: Dict[Tuple[str, str], str] = {(method, path): rule for rule, _, method, path in _CALLS}


def list_rules() -> List[policy.RuleDefault]:
    """Every default rule (the `oslo.policy.policies` entry point: oslopolicy-sample-generator --namespace sharedfs)."""
    calls = [
        policy.DocumentedRuleDefault(rule, check, f"{method} {path}", [{"method": method, "path": path}])
        for rule, check, method, path in _CALLS
    ]
    return [*_BASE, *calls]


def rule_for(method: str, route_path: str) -> Optional[str]:
    return _BY_ROUTE.get((method.upper(), route_path))


@dataclass(frozen=True)
class Identity:
    """What keystonemiddleware says about a valid token."""

    user_id: str
    project_id: Optional[str]
    roles: FrozenSet[str]
    policy_values: dict


@dataclass(frozen=True)
class SignedIn:
    """A dashboard sign-in: the project-scoped token Keystone issued (kept server-side only)."""

    token: str
    project_id: str
    user: str
    expires_at: Optional[dt.datetime]


SIGN_IN_TIMEOUT = 15.0  # seconds for Keystone to answer a dashboard sign-in


def _authenticated(environ, start_response):
    # The innermost application: keystonemiddleware has written its verdict into environ by now.
    start_response("204 No Content", [])
    return [b""]


class KeystoneAuth:
    """Resolves X-Auth-Token to a Principal for one call: sharedfs's own instance tokens first (no
    Keystone round trip for the agents' long-polls), then Keystone, then the policy rule of the call."""

    def __init__(self, config_file: Optional[str], local_tokens: Callable[[str], Optional[Principal]],
                 overrides: Optional[Dict[str, str]] = None) -> None:  # fmt: skip
        self.conf = cfg.ConfigOpts()
        self.conf(["--config-file", config_file] if config_file else [], project="sharedfs", default_config_files=[])
        self.enforcer = policy.Enforcer(self.conf)
        self.enforcer.register_defaults(list_rules())
        self.local_tokens = local_tokens
        # delay_auth_decision: an invalid token is reported to us, not refused, so we answer with our own errors.
        options = {"oslo_config_config": self.conf, "delay_auth_decision": "true", **(overrides or {})}
        self.protocol = auth_token.AuthProtocol(_authenticated, options)

    def identify(self, token: str) -> Optional[Identity]:
        """Keystone's view of token through auth_token (it caches validations), or None if invalid."""
        request = webob.Request.blank("/", headers={"X-Auth-Token": token})
        request.get_response(self.protocol)
        environ = request.environ
        if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return None
        context = oslo_context.RequestContext.from_environ(environ)
        return Identity(context.user_id, context.project_id, frozenset(context.roles), context.to_policy_values())

    def principal(self, token: Optional[str], tenant: str, method: str, route_path: str) -> Principal:
        if not token:
            raise Unauthorized("missing X-Auth-Token header")
        local = self.local_tokens(token)
        if local is not None:
            if local.role != "instance":
                raise Unauthorized("with Keystone authentication only instance tokens are sharedfs's own")
            return local
        rule = rule_for(method, route_path)
        if rule is None:
            if self.identify(token) is None:  # 401 before 403, as everywhere
                raise Unauthorized("the token is neither a valid Keystone token nor an instance token")
            raise Forbidden(f"no policy rule for {method} {route_path}")
        target = {"project_id": tenant}
        identity = self.authorize(token, rule, target)
        if self.enforcer.enforce("context_is_admin", target, identity.policy_values):
            return Principal("admin")
        return Principal("project", tenant)

    def authorize(self, token: Optional[str], rule: str, target: dict) -> Identity:
        """The token's identity if it is a valid Keystone token the rule allows on target; else 401 or 403."""
        identity = self.identify(token) if token else None
        if identity is None:
            raise Unauthorized("the token is neither a valid Keystone token nor an instance token")
        if not self.enforcer.enforce(rule, target, identity.policy_values):
            where = f" on project {target['project_id']!r}" if target.get("project_id") else ""
            raise Forbidden(f"policy {rule} does not allow this token{where}")
        return identity

    def sign_in(self, user: str, password: str, project: str, domain: str) -> SignedIn:
        """A project-scoped token for user/password from the Keystone that validates this API's
        tokens ([keystone_authtoken] www_authenticate_uri), as Horizon's django_openstack_auth does.
        Unauthorized (one message, whatever was wrong: no hint which) or 503 when Keystone is away."""
        auth = v3.Password(auth_url=self.protocol.www_authenticate_uri, username=user, password=password,
                           user_domain_name=domain, project_name=project, project_domain_name=domain)  # fmt: skip
        try:
            access = auth.get_access(ks_session.Session(timeout=SIGN_IN_TIMEOUT))
        except (ks_exceptions.Unauthorized, ks_exceptions.NotFound, ks_exceptions.BadRequest) as e:
            log.info("dashboard sign-in refused by Keystone for user %r: %s", user, type(e).__name__)
            raise Unauthorized("the user name, password, project or domain is wrong") from None
        except ks_exceptions.ClientException as e:
            log.warning("dashboard sign-in: Keystone did not answer: %s", e)
            raise Unavailable("Keystone could not be reached; try again later") from None
        if not access.project_scoped or not access.project_id:
            raise Unauthorized("the user name, password, project or domain is wrong")
        return SignedIn(access.auth_token, access.project_id, access.username or user, access.expires)
