"""sharedfs-client: the os-filesystem API from the user's side — a small HTTP library and the `sharedfs` command."""

from .api import Client, Reply, UrllibTransport
from .errors import ApiError, BadAnswer, ClientError, Unreachable

__all__ = ["Client", "Reply", "UrllibTransport", "ApiError", "BadAnswer", "ClientError", "Unreachable"]
