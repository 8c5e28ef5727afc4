"""Fast P-256 issuance: a TBSCertificate assembled from pre-encoded pieces, signed directly.

cryptography's CertificateBuilder re-validates and re-encodes the issuer, the algorithm and
every extension for each certificate, which caps issuance at about a third of the raw ECDSA
signing rate. For one issuing CA most of the TBS never changes (version, signature algorithm,
issuer name, AuthorityKeyIdentifier), so those bytes are encoded once here and only the
per-certificate parts (serial, validity, subject, SPKI, extension values) are encoded per
call. The result is the same DER the builder writes (tests compare TBS bytes for every
profile); anything this module does not know how to encode identically is refused with
None, and the caller falls back to the builder.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certbridge.der import tlv
from certbridge.interface import SigningRequest

# RFC 5280 §4.1: version [0] EXPLICIT INTEGER v3(2).
_VERSION_V3 = bytes.fromhex("a003020102")
# ecdsa-with-SHA256 (RFC 5758 §3.2): parameters absent.
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_CRITICAL = b"\x01\x01\xff"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_UTC = datetime.UTC


def _tlv(tag: int, content: bytes) -> bytes:
    """`der.tlv` with the short-length case inlined: most pieces here are under 128 bytes."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    return tlv(tag, content)


def encode_integer(value: int) -> bytes:
    """A positive INTEGER, minimal two's complement (a leading 0x00 when the top bit is set)."""
    return _tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big"))


_time_cache: dict[datetime.datetime, bytes] = {}


def _cached_time(moment: datetime.datetime) -> bytes:
    """Certificates issued within one second share their validity: encode it once."""
    encoded = _time_cache.get(moment)
    if encoded is None:
        if len(_time_cache) >= 256:
            _time_cache.clear()
        encoded = _time_cache[moment] = encode_time(moment)
    return encoded


def encode_time(moment: datetime.datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always in UTC."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(_UTC)
    year = moment.year
    clock = f"{moment.month:02d}{moment.day:02d}{moment.hour:02d}{moment.minute:02d}"
    clock = f"{clock}{moment.second:02d}Z"
    if 1950 <= year < 2050:
        return b"\x17\x0d" + f"{year % 100:02d}{clock}".encode()
    return b"\x18\x0f" + f"{year:04d}{clock}".encode()


def encode_extension(extension: x509.Extension[x509.ExtensionType]) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }."""
    oid = extension.oid.dotted_string
    body = _oid_cache.get(oid)
    if body is None:
        body = _oid_cache[oid] = _encode_oid(oid)
    critical = _CRITICAL if extension.critical else b""
    return _tlv(0x30, body + critical + _tlv(0x04, extension.value.public_bytes()))


_oid_cache: dict[str, bytes] = {}
# Extension values that repeat across a CA's certificates (key usage, EKUs, CRL shard URLs,
# AIA) are encoded once; per-certificate ones (SKI, SANs) never enter the cache.
_REPEATING = (
    x509.BasicConstraints,
    x509.KeyUsage,
    x509.ExtendedKeyUsage,
    x509.CRLDistributionPoints,
    x509.AuthorityInformationAccess,
)
_CACHE_ENTRIES = 4096
_encoded_cache: dict[x509.Extension[x509.ExtensionType], bytes] = {}
_SKI_OID = bytes.fromhex("0603551d0e")
# How each supported kind is encoded: from the cache (repeating), by hand (SKI), or afresh.
_CACHED, _KEY_ID, _FRESH = 0, 1, 2
_KINDS: dict[type, int] = {kind: _CACHED for kind in _REPEATING} | {
    x509.SubjectKeyIdentifier: _KEY_ID,
    x509.SubjectAlternativeName: _FRESH,
}
# The extension kinds whose encoding here is proven (tests) to equal the builder's; a request
# with any other kind goes back to the builder.
SUPPORTED_EXTENSIONS = tuple(_KINDS)


def _encoded(extension: x509.Extension[x509.ExtensionType]) -> bytes | None:
    """One extension's DER, or None for a kind outside SUPPORTED_EXTENSIONS."""
    kind = _KINDS.get(type(extension.value))
    if kind == _CACHED:
        encoded = _encoded_cache.get(extension)
        if encoded is None:
            if len(_encoded_cache) >= _CACHE_ENTRIES:
                _encoded_cache.clear()
            encoded = _encoded_cache[extension] = encode_extension(extension)
        return encoded
    if kind == _KEY_ID and not extension.critical:
        digest = extension.value.digest  # type: ignore[attr-defined]
        return _tlv(0x30, _SKI_OID + _tlv(0x04, _tlv(0x04, digest)))
    if kind is None:
        return None
    return encode_extension(extension)


def _encode_oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    content = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content.extend(reversed(chunk))
    return tlv(0x06, bytes(content))


class P256TbsTemplate:
    """The fixed parts of every TBS one P-256 issuing CA signs, encoded once."""

    def __init__(self, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey) -> None:
        self._issuer_key = issuer_key
        self._algorithm = ec.ECDSA(hashes.SHA256())
        self._head_algorithm_issuer = ECDSA_WITH_SHA256 + issuer.subject.public_bytes()
        self._authority_key_identifier = encode_extension(
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            )
        )
        self._signature_algorithm = ECDSA_WITH_SHA256

    def tbs(
        self,
        *,
        serial_number: int,
        subject: x509.Name,
        public_key: object,
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        extensions: tuple[x509.Extension[x509.ExtensionType], ...],
    ) -> bytes | None:
        """The TBSCertificate DER the builder would write (AKI first, then `extensions` in
        order), or None when the inputs are outside what is proven identical."""
        return self._tbs(serial_number, subject, public_key, not_before, not_after, extensions)

    def certificate(self, request: SigningRequest) -> x509.Certificate | None:
        """The signed certificate for `request`, or None: then the builder must sign it."""
        tbs = self._tbs(
            request.serial_number,
            request.subject,
            request.public_key,
            request.not_before,
            request.not_after,
            request.extensions,
        )
        return None if tbs is None else self.sign(tbs)

    def _tbs(
        self,
        serial_number: int,
        subject: x509.Name,
        public_key: object,
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        extensions: tuple[x509.Extension[x509.ExtensionType], ...],
    ) -> bytes | None:
        if serial_number <= 0 or not_before.microsecond or not_after.microsecond:
            return None
        if not_after < not_before or not_before.year < 1950:
            return None  # the builder raises its own, well-worded error
        encoded = [self._authority_key_identifier]
        for extension in extensions:
            piece = _encoded(extension)
            if piece is None:
                return None
            encoded.append(piece)
        if len({extension.oid for extension in extensions}) != len(extensions):
            return None  # the builder refuses duplicates; the fallback keeps that error
        content = b"".join(
            (
                _VERSION_V3,
                encode_integer(serial_number),
                self._head_algorithm_issuer,
                _tlv(0x30, _cached_time(not_before) + _cached_time(not_after)),
                subject.public_bytes(),
                public_key.public_bytes(*_SPKI),  # type: ignore[attr-defined]
                tlv(0xA3, tlv(0x30, b"".join(encoded))),
            )
        )
        return tlv(0x30, content)

    def sign(self, tbs: bytes) -> x509.Certificate:
        """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }."""
        signature = self._issuer_key.sign(tbs, self._algorithm)
        der = tlv(0x30, tbs + self._signature_algorithm + _tlv(0x03, b"\x00" + signature))
        return x509.load_der_x509_certificate(der)
