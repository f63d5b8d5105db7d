"""The python-openstackclient plugin's client module: what OSC asks of an `openstack.cli.extension` entry point."""

from __future__ import annotations

from osc_lib import utils

from ..api import Client
from .session import SERVICE_TYPE, KeystoneTransport, split_endpoint

API_NAME = "filesystem"  # the command group is openstack.filesystem.v1
API_VERSION_OPTION = "os_filesystem_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = {"1": "sharedfs_client.api.Client"}


def make_client(instance) -> Client:
    """The Client for the endpoint of service type `filesystem` in the token's catalog, over OSC's session."""
    url = instance.get_endpoint_for_service_type(SERVICE_TYPE, region_name=instance.region_name,
                                                 interface=instance.interface)  # fmt: skip
    if not url:
        from osc_lib import exceptions

        raise exceptions.CommandError(f"no '{SERVICE_TYPE}' endpoint in the Keystone catalog")
    root, project = split_endpoint(url)
    # The catalog's URL names the project (…/v1.1/%(project_id)s); an endpoint without it acts in the token's.
    return Client(root, project or instance.auth_ref.project_id, KeystoneTransport(instance.session))


def build_option_parser(parser):
    parser.add_argument("--os-filesystem-api-version", metavar="<filesystem-api-version>",
                        default=utils.env("OS_FILESYSTEM_API_VERSION", default=DEFAULT_API_VERSION),
                        help="os-filesystem API version (1, the only one; env OS_FILESYSTEM_API_VERSION)")  # fmt: skip
    return parser
