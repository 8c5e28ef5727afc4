"""CsrAttrs (RFC 7030 §4.5.2 as corrected by RFC 8951 §4) describing what a profile accepts.

A key algorithm is an attribute whose type is the public-key algorithm and whose value is its
parameter (the curve; for RSA, the minimum modulus size); a signature scheme is a bare OID;
a required subjectAltName is an extensionRequest attribute naming that extension. Each allowed
algorithm is listed as one alternative. challengePassword is not asked for: certplane does not
link identity and proof-of-possession (RFC 7030 §3.5), so asking for it would mislead clients.
"""

from __future__ import annotations

from certbridge.der import tlv
from certplane.config import Profile

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
SUBJECT_ALT_NAME = "2.5.29.17"
CURVES = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34"}
EC_SIGNATURES = {"P-256": "1.2.840.10045.4.3.2", "P-384": "1.2.840.10045.4.3.3"}
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"


def _base128(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER."""
    arcs = [int(arc) for arc in dotted.split(".")]
    content = _base128(arcs[0] * 40 + arcs[1]) + b"".join(_base128(a) for a in arcs[2:])
    return tlv(0x06, content)


def integer(value: int) -> bytes:
    """DER INTEGER of a non-negative value."""
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def attribute(type_oid: str, *values: bytes) -> bytes:
    """Attribute ::= SEQUENCE { type OID, values SET OF ANY } (values DER-sorted)."""
    return tlv(0x30, oid(type_oid) + tlv(0x31, b"".join(sorted(values))))


def profile_csr_attributes(profile: Profile) -> list[bytes]:
    """The AttrOrOID elements for a profile, most preferred algorithm first."""
    elements: list[bytes] = []
    signatures: list[str] = []
    for algorithm in profile.key_algorithms:
        if algorithm in CURVES:
            elements.append(attribute(EC_PUBLIC_KEY, oid(CURVES[algorithm])))
            signatures.append(EC_SIGNATURES[algorithm])
        elif algorithm == "RSA":
            elements.append(attribute(RSA_ENCRYPTION, integer(profile.rsa_min_bits)))
            signatures.append(SHA256_WITH_RSA)
        elif algorithm == "Ed25519":
            signatures.append(ED25519)
    elements += [oid(s) for s in dict.fromkeys(signatures)]
    if profile.san.required:
        elements.append(attribute(EXTENSION_REQUEST, oid(SUBJECT_ALT_NAME)))
    return elements


def csr_attrs_der(elements: list[bytes]) -> bytes:
    """CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID."""
    return tlv(0x30, b"".join(elements))
