"""EST media types, the base64 transfer encoding, and proxy responses.

RFC 7030 sends every DER body base64-encoded; RFC 8951 §3 makes that unconditional (whatever a
Content-Transfer-Encoding header says) and asks receivers to tolerate whitespace. Errors are
short text/plain messages (RFC 8951 §5), never a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certplane.errors import CertplaneError, PayloadTooLarge, RequestRejected

PKCS10 = "application/pkcs10"
PKCS7 = "application/pkcs7-mime"
PKCS7_CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
CSRATTRS = "application/csrattrs"
PKCS8 = "application/pkcs8"
TEXT = "text/plain; charset=utf-8"
BASE64_HEADERS = {"Content-Transfer-Encoding": "base64"}
MAX_BODY_BYTES = 64 * 1024
WHITESPACE = b" \t\r\n"
LINE = 64


class MethodNotAllowed(CertplaneError):
    """405; `allow` is the one method the operation takes (sent back as `Allow`)."""

    status = 405

    def __init__(self, operation: str, allow: str) -> None:
        super().__init__("method_not_allowed", f"{operation} takes {allow}")
        self.allow = allow


class UnsupportedMediaType(CertplaneError):
    status = 415


@dataclass(frozen=True)
class EstResponse:
    """One HTTP answer, turned into an API Gateway proxy response by `proxy()`."""

    status: int
    body: str = ""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def proxy(self) -> dict[str, Any]:
        headers = dict(self.headers)
        if self.content_type:
            headers["Content-Type"] = self.content_type
        return {
            "statusCode": self.status,
            "headers": headers,
            "body": self.body,
            "isBase64Encoded": False,
        }


def text(status: int, message: str, headers: Mapping[str, str] | None = None) -> EstResponse:
    return EstResponse(status, message.rstrip() + "\n", TEXT, headers or {})


def base64_lines(der: bytes, newline: str = "\n") -> str:
    """base64 in 64-character lines. A plain body ends lines with LF, which `base64 -d` and
    `openssl base64 -d` both read (coreutils refuses CR); MIME parts use CRLF."""
    encoded = base64.b64encode(der).decode()
    return "".join(encoded[i : i + LINE] + newline for i in range(0, len(encoded), LINE))


def base64_body(status: int, content_type: str, der: bytes) -> EstResponse:
    return EstResponse(status, base64_lines(der), content_type, BASE64_HEADERS)


def headers_of(event: Mapping[str, Any]) -> dict[str, str]:
    """Request headers with lower-case names (HTTP names are case-insensitive)."""
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The bytes the client sent, refused above 64 KiB before anything parses them."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) * 3 // 4 > MAX_BODY_BYTES + 3:
            raise PayloadTooLarge("payload_too_large", "the request body exceeds 64 KiB")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestRejected("malformed_body", "the request body is unreadable") from None
    else:
        data = body.encode()
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge("payload_too_large", "the request body exceeds 64 KiB")
    return data


def require_media_type(headers: Mapping[str, str], expected: str) -> None:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != expected:
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f"send the request as Content-Type: {expected} (got {media_type or 'none'})",
        )


def decode_base64(body: bytes) -> bytes:
    """Strict base64 of a DER body; CR, LF, space and tab anywhere are ignored (RFC 8951)."""
    compact = body.translate(None, WHITESPACE)
    if not compact:
        raise RequestRejected("empty_body", "the request body is empty")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise RequestRejected("malformed_base64", "the request body is not valid base64") from None


def multipart_mixed(parts: list[tuple[str, bytes]]) -> EstResponse:
    """multipart/mixed of base64 DER parts (RFC 7030 §4.4.2); the boundary is random."""
    boundary = f"est-{secrets.token_hex(16)}"
    lines: list[str] = []
    for content_type, der in parts:
        lines += [
            f"--{boundary}",
            f"Content-Type: {content_type}",
            "Content-Transfer-Encoding: base64",
            "",
            base64_lines(der, "\r\n").rstrip("\r\n"),
        ]
    lines += [f"--{boundary}--", ""]
    return EstResponse(200, "\r\n".join(lines), f'multipart/mixed; boundary="{boundary}"')
