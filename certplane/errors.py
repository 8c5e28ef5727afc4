"""Errors the core raises on purpose, each with a stable code and the HTTP status it maps to."""

from __future__ import annotations


class CertplaneError(Exception):
    """A failure the caller should see as `{"error": {"code", "message"}}`."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RequestRejected(CertplaneError):
    """The request is malformed or the profile's policy refuses it."""

    status = 400


class Unauthorized(CertplaneError):
    status = 401


class NotFound(CertplaneError):
    status = 404


class Conflict(CertplaneError):
    """The request clashes with the current state (wrong status, reused idempotency key)."""

    status = 409


class PayloadTooLarge(CertplaneError):
    status = 413


class ServiceUnavailable(CertplaneError):
    """A dependency (a CA engine) is down; the client may retry."""

    status = 503


class Forbidden(CertplaneError):
    """The caller is authenticated but may not act (no tenant mapping, missing role)."""

    status = 403
