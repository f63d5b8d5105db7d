"""The client's errors, split by what the caller does next: fix the request, or retry/fix the endpoint."""

from __future__ import annotations

__all__ = ["ClientError", "ApiError", "Unreachable", "BadAnswer"]


class ClientError(Exception):
    """Anything the client reports; str() is one line a person can act on."""


class ApiError(ClientError):
    """The API answered and refused: its status and its own message (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message = status, message


class Unreachable(ClientError):
    """No answer: connection refused, DNS, TLS, timeout. Nothing is known about the request's effect."""


class BadAnswer(ClientError):
    """An answer that is not the API's (a proxy's HTML page, truncated or non-JSON body)."""
