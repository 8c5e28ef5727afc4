"""Certificates signed by a key held elsewhere (KMS, PKCS#11 HSM): sign the TBS outside.

cryptography builds and signs in one step, so the TBSCertificate is produced by signing once
with a throwaway key of the same algorithm (the TBS names the signature algorithm, not the
key); the real signer then signs those TBS bytes and the DER is assembled around them
(RFC 5280 §4.1: SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

from certbridge.der import element_end, tlv
from certbridge.interface import PermanentEngineError

SignTbs = Callable[[bytes], bytes]


@cache
def placeholder_key(kind: str) -> CertificateIssuerPrivateKeyTypes:
    """A throwaway key per algorithm family, made once per process."""
    if kind == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("RSA"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind.startswith("ML-DSA-"):
        level = {
            "44": mldsa.MLDSA44PrivateKey,
            "65": mldsa.MLDSA65PrivateKey,
            "87": mldsa.MLDSA87PrivateKey,
        }
        return level[kind.removeprefix("ML-DSA-")].generate()
    raise PermanentEngineError(f"no placeholder for {kind} signatures")


def key_kind(public_key: CertificateIssuerPublicKeyTypes) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "P-256", "secp384r1": "P-384"}.get(public_key.curve.name, "?")
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    for level in ("44", "65", "87"):
        if isinstance(public_key, getattr(mldsa, f"MLDSA{level}PublicKey")):
            return f"ML-DSA-{level}"
    raise PermanentEngineError(f"unsupported issuer key {type(public_key).__name__}")


def hash_for(kind: str) -> hashes.HashAlgorithm | None:
    """The digest paired with each issuer key kind (ML-DSA signs the message itself)."""
    if kind == "P-384":
        return hashes.SHA384()
    if kind.startswith("ML-DSA-"):
        return None
    return hashes.SHA256()


def verify_signature(
    public_key: CertificateIssuerPublicKeyTypes, signature: bytes, data: bytes, kind: str
) -> None:
    """Raise InvalidSignature unless `signature` over `data` verifies with `public_key`."""
    algorithm = hash_for(kind)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        assert algorithm is not None
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(public_key, rsa.RSAPublicKey):
        assert algorithm is not None
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        public_key.verify(signature, data)  # type: ignore[call-arg]


def sign_remotely(
    builder: x509.CertificateBuilder,
    issuer_public_key: CertificateIssuerPublicKeyTypes,
    sign_tbs: SignTbs,
) -> x509.Certificate:
    """Finish `builder` with a signature made by `sign_tbs`, verified before it is returned."""
    kind = key_kind(issuer_public_key)
    template = builder.sign(placeholder_key(kind), hash_for(kind))
    tbs = template.tbs_certificate_bytes
    der = template.public_bytes(serialization.Encoding.DER)
    tbs_start = der.index(tbs)
    algorithm_start = tbs_start + len(tbs)
    algorithm = der[algorithm_start : element_end(der, algorithm_start)]
    signature = sign_tbs(tbs)
    try:
        verify_signature(issuer_public_key, signature, tbs, kind)
    except InvalidSignature:
        raise PermanentEngineError("the signer returned a signature that does not verify") from None
    content = tbs + algorithm + tlv(0x03, b"\x00" + signature)
    return x509.load_der_x509_certificate(tlv(0x30, content))
