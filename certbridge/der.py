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
