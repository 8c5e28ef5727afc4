"""Server-side key generation (RFC 7030 §4.4): the one place certplane ever holds a private key
for a client.

The client's CSR only says what to certify (subject, SANs) and which algorithm it wants; its
key and signature are ignored (§4.4.1). The server makes a fresh key of that algorithm and
signs a CSR of its own with it, so the certificate goes through the same lifecycle path (and
proof-of-possession check) as every other. The key is returned once, as PKCS#8, and never
logged, stored or put in an event.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from certplane.errors import RequestRejected
from certplane.policy import requested_sans

GeneratedKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
# A CSR may ask for any RSA size the profile allows; generating a huge one would tie up the
# function for minutes, so the server makes RSA keys up to this size only.
MAX_GENERATED_RSA_BITS = 4096


def generate_like(public_key: CertificatePublicKeyTypes) -> GeneratedKey:
    """A new private key of the same algorithm (curve, RSA modulus size) as `public_key`."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(type(public_key.curve)())
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return ed25519.Ed25519PrivateKey.generate()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size > MAX_GENERATED_RSA_BITS:
            raise RequestRejected(
                "unsupported_key",
                f"the server generates RSA keys of at most {MAX_GENERATED_RSA_BITS} bits",
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=public_key.key_size)
    raise RequestRejected(
        "unsupported_key", "the server cannot generate a key of the CSR's algorithm"
    )


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.HashAlgorithm | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def csr_for_key(template: x509.CertificateSigningRequest, key: GeneratedKey) -> str:
    """A PEM CSR for `key` asking for the template's subject and subjectAltNames."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(template.subject)
    names = requested_sans(template)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, _signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def pkcs8_der(key: GeneratedKey) -> bytes:
    """The unencrypted PKCS#8 the application/pkcs8 part carries (TLS protects it)."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
