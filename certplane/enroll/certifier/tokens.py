"""The xPKI bearer token: base64 of a JSON object, either an X509 token or a SAT token.

libCertifier builds it with `security_generate_x509_crt` (X509: the certificate, a timestamp
string, a nonce and an ECDSA signature over DER ‖ timestamp ‖ nonce ‖ "X509") or
`certifier_create_crt` (SAT: an opaque token, a nonce and a numeric timestamp), pretty-prints
it (escaping `/` as `\\/`) and base64-encodes the JSON. Parsing only decodes and shapes; every
check of what the token claims lives in `authenticate`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from certplane.errors import Unauthorized

MAX_BEARER_CHARS = 16 * 1024
X509_TOKEN_TYPE = "X509"
SAT_TOKEN_TYPE = "SAT"

Nonce = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")]
# Milliseconds since the epoch; X509 tokens send a string (it is signed as text), SATs a number.
Timestamp = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,13}$")]


class _Token(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    nonce: Nonce
    timestamp: Timestamp

    @field_validator("timestamp", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        """A numeric timestamp (SAT) becomes the digit string an X509 token would carry."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value

    @property
    def issued_at(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(int(self.timestamp) / 1000, datetime.UTC)


class X509Token(_Token):
    """Signed with the private key of `certificate` (a factory seed, or the device's own)."""

    token_type: Literal["X509"] = Field(alias="tokenType")
    certificate: str = Field(min_length=1, max_length=8192)
    signature: str = Field(min_length=1, max_length=512)

    @property
    def certificate_der(self) -> bytes:
        return decode_base64(self.certificate, "certificate")

    @property
    def signature_der(self) -> bytes:
        return decode_base64(self.signature, "signature")

    @property
    def signed_message(self) -> bytes:
        """What libCertifier hashes and signs: DER ‖ timestamp ‖ nonce ‖ "X509"."""
        return (
            self.certificate_der
            + self.timestamp.encode()
            + self.nonce.encode()
            + X509_TOKEN_TYPE.encode()
        )


class SatToken(_Token):
    """An opaque token the tenant issued (stored hashed), plus replay protection."""

    token_type: Literal["SAT"] = Field(alias="tokenType")
    token: str = Field(min_length=1, max_length=1024)


_TOKEN = TypeAdapter(Annotated[X509Token | SatToken, Field(discriminator="token_type")])


def decode_base64(text: str, what: str) -> bytes:
    """Standard base64 (libCertifier's encoder); whitespace tolerated, nothing else."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("malformed_token", f"the token's {what} is not valid base64") from None


def parse_bearer(authorization: str | None) -> X509Token | SatToken:
    """The token in an `Authorization: Bearer <base64 JSON>` header, or Unauthorized."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Unauthorized("missing_token", "an Authorization: Bearer token is required")
    if len(value) > MAX_BEARER_CHARS:
        raise Unauthorized("malformed_token", "the bearer token is too large")
    try:
        document = json.loads(decode_base64(value, "envelope").decode("utf-8"))
        return _TOKEN.validate_python(document)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unauthorized(
            "malformed_token", "the bearer token is not a base64 X509 or SAT token"
        ) from None
