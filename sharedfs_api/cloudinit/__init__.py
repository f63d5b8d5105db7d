"""cloud-init documents that install and start sharedfs-agent: per instance (user-data) or for a fleet (vendor-data)."""

from __future__ import annotations

import re
from importlib import resources
from string import Template
from typing import Optional, Sequence

from sharedfs_agent import mounters, wire

__all__ = ["render", "FS_TYPES", "TOKEN_META_KEY"]

# The types an installer can set up: every mounter the agent ships (its registry decides).
FS_TYPES = tuple(mounters.BUILTIN)
# vendor-data: the token comes from the instance's metadata under this key, so one document
# serves every instance (openstack server create --property sharedfs_token=…).
TOKEN_META_KEY = "sharedfs_token"

# The agent checks the same values with the same patterns when vendordata hands them over.
_URL, _IDENT, _TOKEN, _PEM = wire.API_URL, wire.IDENT, wire.TOKEN, wire.CA_PEM
CA_PATH = "/etc/sharedfs-agent/ca.pem"


def _template() -> str:
    return resources.files(__name__).joinpath("user-data.yaml.in").read_text()


def _agent_file(name: str) -> str:
    """The unit, installer and token helper are the agent's own files (its wheel carries them in
    sharedfs_agent/install/); the documents embed them as they ship."""
    return resources.files("sharedfs_agent").joinpath("install").joinpath(name).read_text()


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(True))


def _check(kind: str, value: str, pattern: re.Pattern) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must match {pattern.pattern}")
    return value


def render(api_url: str, index_url: str, fs_types: Sequence[str], token: Optional[str] = None,
           instance_id: Optional[str] = None, project: Optional[str] = None,
           ca_pem: Optional[str] = None) -> str:  # fmt: skip
    """A #cloud-config document. With a token (and instance_id, project): user-data for one
    instance. Without: vendor-data for every instance, the token read from instance metadata and
    the identity discovered by the agent. Every value is checked, so none can break the YAML."""
    _check("api url", api_url, _URL)
    _check("index url", index_url, _URL)
    for fs in fs_types:
        if fs not in FS_TYPES:
            raise ValueError(f"filesystem type {fs!r} is not one of {', '.join(FS_TYPES)}")
    api_lines = ""
    if instance_id or project:
        api_lines = (f"      instance_id = {_check('instance id', instance_id or '', _IDENT)}\n"
                     f"      project = {_check('project', project or '', _IDENT)}")  # fmt: skip
    if ca_pem:
        _check("CA bundle", ca_pem.strip() + "\n", _PEM)
        api_lines += f"\n      ca_bundle = {CA_PATH}"
    if token is not None:
        token_file = (
            '  - path: /etc/sharedfs-agent/token\n    owner: root:root\n    permissions: "0600"\n'
            f'    content: "{_check("token", token, _TOKEN)}"'
        )
        who, from_metadata = f"instance {instance_id} of project {project}", ""
    else:
        token_file = (
            "  - path: /usr/local/lib/sharedfs-agent/token-from-metadata.py\n    owner: root:root\n"
            f'    permissions: "0755"\n    content: |\n{_indent(_agent_file("token-from-metadata.py"), 6)}'
        )
        who = "every instance (vendor-data; token from instance metadata sharedfs_token)"
        from_metadata = "  - [/usr/local/lib/sharedfs-agent/token-from-metadata.py]"
    ca_file = ""
    if ca_pem:
        ca_file = (f"  - path: {CA_PATH}\n    owner: root:root\n    permissions: \"0644\"\n    content: |\n"
                   f"{_indent(ca_pem.strip() + chr(10), 6)}")  # fmt: skip
    template = Template(_template().split("\n", 1)[1])  # drop the template's own comment
    document = template.substitute(
        WHO=who,
        API_URL=api_url,
        API_LINES=api_lines,
        TOKEN_FILE=token_file,
        UNIT=_indent(_agent_file("sharedfs-agent.service"), 6),
        INSTALLER=_indent(_agent_file("install-agent.sh"), 6),
        CA_FILE=ca_file,
        TOKEN_FROM_METADATA=from_metadata,
        INDEX_URL=index_url,
        CA_PATH=CA_PATH if ca_pem else "",
        FS_TYPES="".join(f', "{fs}"' for fs in fs_types),
    )
    return document
