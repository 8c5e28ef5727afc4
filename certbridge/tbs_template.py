"""Fast P-256 issuance: a TBSCertificate assembled from pre-encoded pieces, signed directly.

cryptography's CertificateBuilder re-validates and re-encodes the issuer, the algorithm and
every extension for each certificate, which caps issuance at about a third of the raw ECDSA
signing rate. For one issuing CA most of the TBS never changes (version, signature algorithm,
issuer name, AuthorityKeyIdentifier), so those bytes are encoded once here and only the
per-certificate parts (serial, validity, subject, SPKI, extension values) are encoded per
call. The result is the same DER the builder writes (tests compare TBS bytes for every
profile); anything this module does not know how to encode identically is refused with
None, and the caller falls back to the builder.

Encoding a key's SubjectPublicKeyInfo through OpenSSL costs a fifth of an ECDSA signature
(an elliptic-curve point conversion), so the SPKI the device already sent in its CSR is
reused when it is the canonical DER the builder would write and the request's
SubjectKeyIdentifier proves it is the key policy approved.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certbridge.der import csr_subject_public_key_info, tlv
from certbridge.interface import SigningRequest

# RFC 5280 §4.1: version [0] EXPLICIT INTEGER v3(2).
_VERSION_V3 = bytes.fromhex("a003020102")
# ecdsa-with-SHA256 (RFC 5758 §3.2): parameters absent.
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_CRITICAL = b"\x01\x01\xff"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_UTC = datetime.UTC


def _tlv(tag: int, content: bytes) -> bytes:
    """`der.tlv` with the one- and two-octet length cases inlined (a TBS is a few hundred bytes)."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    if size < 0x100:
        return bytes((tag, 0x81, size)) + content
    if size < 0x10000:
        return bytes((tag, 0x82, size >> 8, size & 0xFF)) + content
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
    oid = _encode_oid(extension.value.oid.dotted_string)
    return _extension(oid, extension.critical, extension.value.public_bytes())


def _extension(encoded_oid: bytes, critical: bool, value: bytes) -> bytes:
    return _tlv(0x30, encoded_oid + (_CRITICAL if critical else b"") + _tlv(0x04, value))


# The extension kinds whose encoding here is proven (tests) to equal the builder's, with
# their extnID encoded once; a request with any other kind goes back to the builder. Like the
# builder, the value's own OID is written. (Hashing the values to cache their encodings cost
# more than encoding them: cryptography's value objects hash in Python.)
SUPPORTED_EXTENSIONS = (
    x509.BasicConstraints,
    x509.KeyUsage,
    x509.ExtendedKeyUsage,
    x509.SubjectKeyIdentifier,
    x509.SubjectAlternativeName,
    x509.CRLDistributionPoints,
    x509.AuthorityInformationAccess,
)


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


_OIDS = {kind: _encode_oid(kind.oid.dotted_string) for kind in SUPPORTED_EXTENSIONS}

# SubjectPublicKeyInfo DER as the builder writes it, by length: the fixed prefix (algorithm,
# named curve, BIT STRING header, and for EC the uncompressed-point marker 0x04) and where
# the subjectPublicKey bits start (what RFC 5280's SHA-1 key identifier hashes).
_CANONICAL_SPKI = {
    91: (bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004"), 26),  # P-256
    120: (bytes.fromhex("3076301006072a8648ce3d020106052b8104002203620004"), 23),  # P-384
    44: (bytes.fromhex("302a300506032b6570032100"), 12),  # Ed25519
}


def _reusable_spki(spki: bytes | None, key_identifier: bytes | None) -> bool:
    """True when `spki` is the canonical encoding of the key the SubjectKeyIdentifier names.

    The identifier was computed by policy from the approved key object (SHA-1 of the key bits,
    RFC 5280, or truncated SHA-256 of the SPKI, RFC 7093), so a CSR that does not hold that
    key can never put its own key into the certificate.
    """
    if spki is None or key_identifier is None or len(key_identifier) < 8:
        return False  # no identifier, or one too short to bind a key (RFC 7093 uses ≥ 64 bits)
    canonical = _CANONICAL_SPKI.get(len(spki))
    if canonical is None or not spki.startswith(canonical[0]):
        return False
    if len(key_identifier) == 20 and hashlib.sha1(spki[canonical[1] :]).digest() == key_identifier:
        return True
    return hashlib.sha256(spki).digest()[: len(key_identifier)] == key_identifier


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
        subject_public_key_info: bytes | None = None,
    ) -> bytes | None:
        """The TBSCertificate DER the builder would write (AKI first, then `extensions` in
        order), or None when the inputs are outside what is proven identical.
        `subject_public_key_info` is the key's DER as the requester sent it, used when it is
        provably `public_key` in canonical form."""
        return self._tbs(
            serial_number,
            subject,
            public_key,
            not_before,
            not_after,
            extensions,
            subject_public_key_info,
        )

    def certificate(self, request: SigningRequest) -> x509.Certificate | None:
        """The signed certificate for `request`, or None: then the builder must sign it."""
        spki = None
        if request.csr_der is not None:
            try:
                spki = csr_subject_public_key_info(request.csr_der)
            except IndexError:
                spki = None  # not a well-formed CSR: encode the key instead
        tbs = self._tbs(
            request.serial_number,
            request.subject,
            request.public_key,
            request.not_before,
            request.not_after,
            request.extensions,
            spki,
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
        spki: bytes | None,
    ) -> bytes | None:
        if serial_number <= 0 or not_before.microsecond or not_after.microsecond:
            return None
        if not_after < not_before or not_before.year < 1950:
            return None  # the builder raises its own, well-worded error
        encoded = [self._authority_key_identifier]
        kinds = set()
        key_identifier = None
        for extension in extensions:
            value = extension.value
            kind = type(value)
            oid = _OIDS.get(kind)
            if oid is None or kind in kinds:
                return None  # unsupported, or a duplicate the builder refuses with its error
            kinds.add(kind)
            if kind is x509.SubjectKeyIdentifier:
                key_identifier = value.digest  # type: ignore[attr-defined]
                encoded.append(_extension(oid, extension.critical, _tlv(0x04, key_identifier)))
            else:
                encoded.append(_extension(oid, extension.critical, value.public_bytes()))
        if not _reusable_spki(spki, key_identifier):
            spki = public_key.public_bytes(*_SPKI)  # type: ignore[attr-defined]
        content = b"".join(
            (
                _VERSION_V3,
                encode_integer(serial_number),
                self._head_algorithm_issuer,
                _tlv(0x30, _cached_time(not_before) + _cached_time(not_after)),
                subject.public_bytes(),
                spki,
                _tlv(0xA3, _tlv(0x30, b"".join(encoded))),
            )
        )
        return _tlv(0x30, content)

    def sign(self, tbs: bytes) -> x509.Certificate:
        """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }."""
        signature = self._issuer_key.sign(tbs, self._algorithm)
        der = _tlv(0x30, tbs + self._signature_algorithm + _tlv(0x03, b"\x00" + signature))
        return x509.load_der_x509_certificate(der)
