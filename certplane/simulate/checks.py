"""What a device checks about every certificate it receives, before it counts as issued.

It must parse, certify the device's own public key, and be signed directly by one of the CA
certificates the server publishes (EST `cacerts`). A certificate failing any of these is an
error of the run, whatever the HTTP status said.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.simulate.http import RequestFailed


def _spki(key: ec.EllipticCurvePublicKey | x509.Certificate) -> bytes:
    public = key.public_key() if isinstance(key, x509.Certificate) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_id(certificate: x509.Certificate) -> str:
    """The xPKI certificate id: lowercase hex SHA-1 of the DER."""
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def sha256_fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_certificate(
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    issuers: Sequence[x509.Certificate],
) -> None:
    """Raise RequestFailed("certificate: …") unless the certificate is the device's own."""
    if _spki(certificate) != _spki(key.public_key()):
        raise RequestFailed("certificate: the public key is not the device's key")
    for issuer in issuers:
        if issuer.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(issuer)
            return
        except (InvalidSignature, ValueError, TypeError):
            continue
    raise RequestFailed("certificate: not signed by any CA the server publishes")
