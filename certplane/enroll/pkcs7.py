"""Certs-only PKCS#7 (CMS SignedData with no signers), keeping the certificates' order.

libCertifier takes the leaf, issuing CA and root in exactly that order; cryptography's
`pkcs7.serialize_certificates` writes the SET OF in DER-sorted order, which breaks it. The
structure is small enough to write directly (RFC 5652 §5.1, RFC 7030 §4.1.3).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbridge.der import tlv

SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2
DATA_OID = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1


def certs_only_der(certificates: Sequence[x509.Certificate]) -> bytes:
    """DER ContentInfo{signedData} holding `certificates` in the order given."""
    certs = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates)
    signed_data = tlv(
        0x30,
        tlv(0x02, b"\x01")  # version 1
        + tlv(0x31, b"")  # digestAlgorithms: none
        + tlv(0x30, DATA_OID)  # encapContentInfo: id-data, no content
        + tlv(0xA0, certs)  # [0] IMPLICIT certificates
        + tlv(0x31, b""),  # signerInfos: none
    )
    return tlv(0x30, SIGNED_DATA_OID + tlv(0xA0, signed_data))


def certs_only_pem(certificates: Sequence[x509.Certificate]) -> str:
    body = base64.encodebytes(certs_only_der(certificates)).decode()
    return f"-----BEGIN PKCS7-----\n{body}-----END PKCS7-----\n"


def certs_only_base64(certificates: Sequence[x509.Certificate]) -> str:
    """EST's body for application/pkcs7-mime: base64 of the DER, in 76-character lines."""
    return base64.encodebytes(certs_only_der(certificates)).decode()
