"""Read the certificates of a certs-only PKCS#7 in the order they were sent.

An xPKI reply's `certificateChain` holds leaf, issuing CA and root in that order, which is
not the DER order of a SET OF. cryptography's `pkcs7.load_*_pkcs7_certificates` then warns
("could not be parsed as DER, falling back to parsing as BER … may become an exception"), so
the few layers down to the certificates are walked here instead (RFC 5652 §5.1: ContentInfo
→ SignedData → [0] IMPLICIT certificates). Definite and indefinite (BER) lengths are read,
since Java back ends often write the latter; each certificate itself must be DER.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509

SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_SEQUENCE, _SET, _OID, _INTEGER = 0x30, 0x31, 0x06, 0x02
_CONTEXT_0, _CONTEXT_1 = 0xA0, 0xA1
_PEM = re.compile(rb"-----BEGIN (?:PKCS7|CMS)-----(.+?)-----END (?:PKCS7|CMS)-----", re.S)
_MAX_DEPTH = 8


class Pkcs7Error(ValueError):
    """The bytes are not a certs-only PKCS#7 this reader understands."""


def _header(data: bytes, start: int) -> tuple[int, int, int | None]:
    """(tag, index of the content, content length or None for indefinite) at `start`."""
    if start + 2 > len(data):
        raise Pkcs7Error("truncated element")
    tag, first = data[start], data[start + 1]
    if tag & 0x1F == 0x1F:
        raise Pkcs7Error("multi-byte tags do not occur in a certs-only PKCS#7")
    if first < 0x80:
        return tag, start + 2, first
    if first == 0x80:
        if not tag & 0x20:
            raise Pkcs7Error("an indefinite length on a primitive element")
        return tag, start + 2, None
    octets = first & 0x7F
    if octets > 4 or start + 2 + octets > len(data):
        raise Pkcs7Error("bad length")
    length = int.from_bytes(data[start + 2 : start + 2 + octets], "big")
    return tag, start + 2 + octets, length


def _children(data: bytes, start: int, depth: int = 0) -> tuple[list[tuple[int, int, int]], int]:
    """The (tag, start, end) of each child of the constructed element at `start`, and its end."""
    if depth > _MAX_DEPTH:
        raise Pkcs7Error("nested too deeply")
    _, content, length = _header(data, start)
    children: list[tuple[int, int, int]] = []
    position = content
    while True:
        if length is not None and position >= content + length:
            if position != content + length:
                raise Pkcs7Error("an element overruns its parent")
            return children, position
        if length is None and data[position : position + 2] == b"\x00\x00":
            return children, position + 2
        end = _end(data, position, depth + 1)
        children.append((data[position], position, end))
        position = end


def _end(data: bytes, start: int, depth: int = 0) -> int:
    _, content, length = _header(data, start)
    if length is None:
        return _children(data, start, depth)[1]
    end = content + length
    if end > len(data):
        raise Pkcs7Error("truncated element")
    return end


def _only(children: list[tuple[int, int, int]], tag: int, what: str) -> tuple[int, int, int]:
    if not children or children[0][0] != tag:
        raise Pkcs7Error(f"expected {what}")
    return children[0]


def certificates_from_der(der: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a certs-only ContentInfo{signedData}, in the order they appear."""
    try:
        outer, end = _children(der, 0)
        if der[0] != _SEQUENCE or end != len(der):
            raise Pkcs7Error("not a single ContentInfo")
        oid = _only(outer, _OID, "the contentType")
        _, content, length = _header(der, oid[1])
        if der[content : content + (length or 0)] != SIGNED_DATA_OID:
            raise Pkcs7Error("the content is not signedData")
        explicit = _only(outer[1:], _CONTEXT_0, "the [0] content")
        signed_data = _only(_children(der, explicit[1])[0], _SEQUENCE, "SignedData")
        fields = _children(der, signed_data[1])[0]
        _only(fields, _INTEGER, "the SignedData version")
        _only(fields[1:], _SET, "digestAlgorithms")
        _only(fields[2:], _SEQUENCE, "encapContentInfo")
        certificates = _only(fields[3:], _CONTEXT_0, "[0] certificates")
        found = []
        for tag, start, stop in _children(der, certificates[1])[0]:
            if tag != _SEQUENCE:  # [0]..[3]: attribute certificates and other formats
                raise Pkcs7Error("the bundle holds something other than X.509 certificates")
            found.append(x509.load_der_x509_certificate(der[start:stop]))
    except IndexError:
        raise Pkcs7Error("truncated PKCS#7") from None
    except Pkcs7Error:
        raise
    except ValueError as error:  # a certificate cryptography cannot read
        raise Pkcs7Error(f"a certificate in the PKCS#7 cannot be read: {error}") from None
    if not found:
        raise Pkcs7Error("the PKCS#7 holds no certificates")
    return tuple(found)


def certificates_from_pem(text: str) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM `-----BEGIN PKCS7-----` block (also bare base64), in order."""
    raw = text.encode()
    match = _PEM.search(raw)
    body = match.group(1) if match else raw
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Pkcs7Error("the certificate chain is not base64 PKCS#7") from None
    return certificates_from_der(der)
