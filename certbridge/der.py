"""The few DER primitives certplane writes by hand (where cryptography has no builder).

Used for certificates signed outside the process, certs-only PKCS#7 that must keep its
order, and EST's CsrAttrs. Definite lengths only, as DER requires.
"""

from __future__ import annotations


def encode_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, length, content."""
    return bytes([tag]) + encode_length(len(content)) + content


def element_end(der: bytes, start: int) -> int:
    """Index just past the DER element that starts at `start`."""
    length = der[start + 1]
    if length < 0x80:
        return start + 2 + length
    octets = length & 0x7F
    return start + 2 + octets + int.from_bytes(der[start + 2 : start + 2 + octets], "big")


def content_start(der: bytes, start: int) -> int:
    """Index of the first content octet of the DER element that starts at `start`."""
    length = der[start + 1]
    return start + 2 + (length & 0x7F if length & 0x80 else 0)


def child(der: bytes, start: int, index: int) -> tuple[int, int]:
    """(start, end) of the `index`-th element inside the constructed element at `start`."""
    position = content_start(der, start)
    for _ in range(index):
        position = element_end(der, position)
    return position, element_end(der, position)


def csr_subject_public_key_info(csr_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a PKCS#10 request, byte for byte as the requester wrote it
    (RFC 2986: CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, … })."""
    info_start, _ = child(csr_der, 0, 0)
    begin, end = child(csr_der, info_start, 2)
    return csr_der[begin:end]
