"""API errors: each carries the HTTP status and a message a person can act on."""

from __future__ import annotations

from typing import Mapping, Optional

from starlette.responses import JSONResponse

__all__ = ["error_response", "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "Unavailable", "DriverError"]


class ApiError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Unavailable(ApiError):
    status = 503


def error_response(status: int, message: str, headers: Optional[Mapping[str, str]] = None) -> JSONResponse:
    """How every error is answered: {"error": {"code", "message"}}."""
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status, headers=headers)


class DriverError(Exception):
    """A driver could not do what was asked; the message goes into the filesystem's status."""
