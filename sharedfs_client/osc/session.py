"""A Transport over a keystoneauth session, the endpoint from the Keystone catalog, a session from an openrc's OS_*.

The core client (api.py) knows nothing of Keystone: this module adapts keystoneauth to its
Transport protocol. The session adds (and renews) the token; the catalog gives the endpoint,
registered with the project in its path (`https://host:8776/v1.1/%(project_id)s`, docs/api.md).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Tuple

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading, session

from ..api import MAX_ANSWER_BYTES, Reply
from ..errors import BadAnswer, Unreachable

__all__ = ["SERVICE_TYPE", "KeystoneTransport", "split_endpoint", "session_from_environment", "catalog_endpoint"]

SERVICE_TYPE = "filesystem"

_VERSIONED = re.compile(r"^(?P<root>.*?)/v1\.1(?:/(?P<project>[^/]+))?/*$")


def split_endpoint(url: str) -> Tuple[str, Optional[str]]:
    """A catalog URL -> (the API's root, the project in its path or None): the Client adds `/v1.1/PROJECT` itself."""
    found = _VERSIONED.match(url)
    if not found:
        return url.rstrip("/"), None
    return found.group("root").rstrip("/"), found.group("project")


class KeystoneTransport:
    """Requests through a keystoneauth session, which sends the token and fetches a new one when it expires."""

    def __init__(self, ks_session: session.Session) -> None:
        self.session = ks_session

    def send(self, method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float) -> Reply:
        try:
            response = self.session.request(url, method, headers=headers, data=body, timeout=timeout,
                                            raise_exc=False, authenticated=True)  # fmt: skip
        except ks_exceptions.http.Unauthorized as e:  # Keystone itself refused the credentials
            raise Unreachable(f"Keystone refused the credentials: {e}") from None
        except ks_exceptions.ClientException as e:  # connection, TLS, timeout, catalog, auth plugin
            raise Unreachable(f"{method} {url}: {type(e).__name__}: {e}") from None
        if len(response.content) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"{method} {url}: an answer of {len(response.content)} bytes is not the API's")
        return Reply(response.status_code, response.headers, response.content)


def _typed(option, text: str):
    if option.type is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return option.type(text) if option.type else text


def session_from_environment(env: Mapping[str, str]) -> session.Session:
    """A session from an openrc's variables (OS_AUTH_URL, OS_USERNAME, OS_PROJECT_NAME, OS_AUTH_TYPE, OS_CACERT …),
    with the same names python-openstackclient reads; ValueError when they do not make credentials."""
    auth_type = env.get("OS_AUTH_TYPE") or ("token" if env.get("OS_TOKEN") else "password")
    try:
        loader = loading.get_plugin_loader(auth_type)
        options = {}
        for option in loader.get_options():
            for variable in option.argparse_envvars:
                if env.get(variable):
                    options[option.dest] = _typed(option, env[variable])
                    break
        auth = loader.load_from_options(**options)
    except (ks_exceptions.ClientException, TypeError) as e:  # unknown OS_AUTH_TYPE, a required variable missing
        raise ValueError(f"OS_* credentials (OS_AUTH_TYPE={auth_type}): {e}") from None
    verify = False if env.get("OS_INSECURE", "").lower() in ("1", "true", "yes") else (env.get("OS_CACERT") or True)
    return session.Session(auth=auth, verify=verify, user_agent="sharedfs-client")


def catalog_endpoint(ks_session: session.Session, env: Mapping[str, str]) -> str:
    """The `filesystem` endpoint in the token's catalog (OS_REGION_NAME, OS_INTERFACE as OSC reads them)."""
    try:
        url = ks_session.get_endpoint(service_type=SERVICE_TYPE, interface=env.get("OS_INTERFACE") or "public",
                                      region_name=env.get("OS_REGION_NAME") or None)  # fmt: skip
    except ks_exceptions.http.Unauthorized as e:
        raise Unreachable(f"Keystone refused the credentials: {e}") from None
    except ks_exceptions.ClientException as e:
        raise Unreachable(f"cannot read the Keystone catalog: {type(e).__name__}: {e}") from None
    if not url:
        raise Unreachable(f"no '{SERVICE_TYPE}' endpoint in the Keystone catalog (docs/api.md, Catalog)")
    return url


def project_of(ks_session: session.Session) -> str:
    try:
        return ks_session.get_project_id()
    except ks_exceptions.ClientException as e:
        raise Unreachable(f"cannot authenticate with Keystone: {type(e).__name__}: {e}") from None
