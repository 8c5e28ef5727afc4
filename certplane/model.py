"""Domain vocabulary shared by every layer of the core: statuses, reasons, identifiers."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

CERTIFICATE_ID_PATTERN = re.compile(r"^[0-9a-f]{40}$")
SERIAL_PATTERN = re.compile(r"^(?:[0-9a-f]{2}:)*[0-9a-f]{1,40}$")


class CertificateStatus(StrEnum):
    PENDING = "PENDING"
    ISSUED = "ISSUED"
    FAILED = "FAILED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    SUPERSEDED = "SUPERSEDED"


# RFC 5280 §5.3.1 reason names as cryptography spells them; removeFromCRL only undoes a hold.
REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    flag.value: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl
}


def iso_timestamp(moment: datetime.datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, the one spelling of time in events and API responses."""
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z") if moment else None


def new_serial_number(octets: int = 16) -> int:
    """A positive random serial of at most `octets` DER octets (9 octets still give 71 bits)."""
    while True:
        serial = int.from_bytes(os.urandom(octets), "big") >> 1
        if serial:
            return serial


def format_serial(serial: int) -> str:
    """The canonical serial spelling used in keys and output: 32 lowercase hex digits."""
    return format(serial, "032x")


def parse_serial(text: str) -> int | None:
    """A serial from hex, with or without colons; None when it is not one."""
    cleaned = text.strip().lower()
    if not SERIAL_PATTERN.match(cleaned):
        return None
    return int(cleaned.replace(":", ""), 16)


def certificate_id(certificate: x509.Certificate) -> str:
    """The xPKI certificate id: lowercase hex SHA-1 of the DER (what libCertifier sends)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def sha256_fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def key_algorithm(public_key: CertificatePublicKeyTypes) -> str:
    """A short name for a public key: P-256, P-384, Ed25519, RSA-2048, ML-DSA-65, or what it is."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public_key.curve.name, public_key.curve.name
        )
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    for level in ("44", "65", "87"):  # FIPS 204 names, as profiles spell them
        if isinstance(public_key, getattr(mldsa, f"MLDSA{level}PublicKey")):
            return f"ML-DSA-{level}"
    return type(public_key).__name__
