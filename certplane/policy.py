"""Profile policy: turns a CSR and a profile into exactly what will be signed, or refuses.

Everything a CA engine signs is decided here (lint before sign): key algorithm, subject,
SANs, key usage, EKUs, validity clamped to the profile and to the issuing CA.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certplane.config import Profile
from certplane.errors import RequestRejected
from certplane.model import key_algorithm

EKU_OIDS = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
}
SUBJECT_OIDS = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.SERIAL_NUMBER: "serialNumber",
}
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True)
class CertificatePlan:
    """What policy approved: the engine signs exactly this (plus its own AKI)."""

    public_key: CertificatePublicKeyTypes
    subject: x509.Name
    sans: tuple[x509.GeneralName, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    key_algorithm: str


def _maybe_base64(raw: bytes) -> bytes:
    """DER as is; base64 of DER (whitespace allowed) decoded. DER starts with SEQUENCE (0x30)."""
    if raw[:1] == b"\x30":
        return raw
    try:
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except binascii.Error:
        return raw


def load_csr(data: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM (or base64/DER) CSR and check its proof of possession."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CSR_BYTES:
        raise RequestRejected("malformed_csr", f"the CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(raw)
        else:
            csr = x509.load_der_x509_csr(_maybe_base64(raw))
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise RequestRejected("malformed_csr", f"the CSR could not be parsed: {error}") from None
    try:
        signature_valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as error:
        raise RequestRejected(
            "malformed_csr", f"the CSR signature is unreadable: {error}"
        ) from None
    if not signature_valid:
        raise RequestRejected(
            "invalid_csr_signature", "the CSR signature does not verify (no proof of possession)"
        )
    return csr


def csr_public_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    try:
        return csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as error:
        raise RequestRejected(
            "unsupported_key", f"the CSR public key is unsupported: {error}"
        ) from None


def check_key(profile: Profile, public_key: CertificatePublicKeyTypes) -> str:
    """Refuse keys the profile does not allow; returns the key's algorithm name."""
    name = key_algorithm(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        if "RSA" not in profile.key_algorithms or public_key.key_size < profile.rsa_min_bits:
            raise RequestRejected(
                "unsupported_key",
                f"{name} is not allowed by profile {profile.name}: RSA keys need "
                f"{profile.rsa_min_bits} bits or more"
                if "RSA" in profile.key_algorithms
                else f"RSA keys are not allowed by profile {profile.name}",
            )
        return name
    if name not in profile.key_algorithms:
        raise RequestRejected(
            "unsupported_key",
            f"{name} keys are not allowed by profile {profile.name} "
            f"(allowed: {', '.join(profile.key_algorithms)})",
        )
    return name


def _check_subject(profile: Profile, subject: x509.Name) -> x509.Name:
    allowed = set(profile.subject.allowed_attributes)
    for attribute in subject:
        label = SUBJECT_OIDS.get(attribute.oid, attribute.oid.dotted_string)
        if label not in allowed:
            raise RequestRejected(
                "subject_not_allowed",
                f"subject attribute {label} is not allowed by profile {profile.name}",
            )
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) > 1:
        raise RequestRejected("subject_not_allowed", "the subject has more than one common name")
    if not common_names and profile.subject.common_name_required:
        raise RequestRejected(
            "subject_not_allowed", f"profile {profile.name} requires a subject common name"
        )
    if common_names:
        value = str(common_names[0].value)
        if not re.fullmatch(profile.subject.common_name_pattern, value):
            raise RequestRejected(
                "subject_not_allowed",
                f"common name {value!r} does not match profile {profile.name}",
            )
    return subject


def requested_sans(
    csr: x509.CertificateSigningRequest | x509.Certificate,
) -> list[x509.GeneralName]:
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except ValueError as error:
        raise RequestRejected(
            "malformed_csr", f"the CSR extensions are malformed: {error}"
        ) from None
    return list(extension.value)


def _san_allowed(profile: Profile, name: x509.GeneralName) -> bool:
    rules = profile.san
    if isinstance(name, x509.DNSName):
        return any(re.fullmatch(pattern, name.value) for pattern in rules.dns)
    if isinstance(name, x509.UniformResourceIdentifier):
        return any(re.fullmatch(pattern, name.value) for pattern in rules.uri)
    if isinstance(name, x509.RFC822Name):
        return any(re.fullmatch(pattern, name.value) for pattern in rules.email)
    if isinstance(name, x509.IPAddress) and isinstance(
        name.value, ipaddress.IPv4Address | ipaddress.IPv6Address
    ):
        return any(name.value in ipaddress.ip_network(network) for network in rules.ip_ranges)
    return False


def describe_san(name: x509.GeneralName) -> str:
    """`DNS:host`, `IP:addr`, `URI:…`, `email:…` as openssl prints them."""
    prefix = {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.UniformResourceIdentifier: "URI",
        x509.RFC822Name: "email",
    }.get(type(name), type(name).__name__)
    return f"{prefix}:{name.value}"


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 subject a front door built itself (e.g. the Certifier API's nodeAddress)."""
    try:
        return x509.Name.from_rfc4514_string(text)
    except ValueError as error:
        raise RequestRejected("subject_not_allowed", f"the subject is malformed: {error}") from None


def parse_san(text: str) -> x509.GeneralName:
    """The inverse of `describe_san`: `DNS:host`, `IP:addr`, `URI:…`, `email:…`."""
    kind, _, value = text.partition(":")
    try:
        if kind == "DNS" and value:
            return x509.DNSName(value)
        if kind == "IP":
            return x509.IPAddress(ipaddress.ip_address(value))
        if kind == "URI" and value:
            return x509.UniformResourceIdentifier(value)
        if kind == "email" and value:
            return x509.RFC822Name(value)
    except ValueError as error:
        raise RequestRejected("san_not_allowed", f"{text!r} is not a valid name: {error}") from None
    raise RequestRejected("san_not_allowed", f"{text!r} is not a DNS, IP, URI or email name")


def _common_name_san(value: str) -> x509.GeneralName:
    """A common name as a SAN: an IP address literal is an iPAddress, anything else a dNSName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _check_sans(
    profile: Profile, subject: x509.Name, requested: list[x509.GeneralName]
) -> tuple[x509.GeneralName, ...]:
    names = list(dict.fromkeys(requested))
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if profile.common_name_in_san and common_names:
        cn = _common_name_san(str(common_names[0].value))
        if cn not in names:
            names.insert(0, cn)
    for name in names:
        if not _san_allowed(profile, name):
            raise RequestRejected(
                "san_not_allowed",
                f"subject alternative name {describe_san(name)} is not allowed by profile "
                f"{profile.name}",
            )
    if len(names) > profile.san.max_names:
        raise RequestRejected(
            "san_not_allowed",
            f"{len(names)} subject alternative names exceed profile {profile.name}'s "
            f"limit of {profile.san.max_names}",
        )
    if profile.san.required and not names:
        raise RequestRejected(
            "san_not_allowed", f"profile {profile.name} requires a subject alternative name"
        )
    return tuple(names)


def _key_usage(public_key: CertificatePublicKeyTypes, profile: Profile) -> x509.KeyUsage:
    # RSA TLS servers may still be asked for RSA key transport; EC and EdDSA keys only sign.
    rsa_key_transport = isinstance(public_key, rsa.RSAPublicKey) and (
        "serverAuth" in profile.extended_key_usages
    )
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key_transport,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_key_identifier(
    public_key: CertificatePublicKeyTypes, profile: Profile
) -> x509.SubjectKeyIdentifier:
    """RFC 5280's SHA-1 key id, or RFC 7093's truncated SHA-256 where a profile saves bytes."""
    if profile.key_identifier_bytes is None:
        return x509.SubjectKeyIdentifier.from_public_key(public_key)
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(spki).digest()  # RFC 7093 §2 method 4, truncated
    return x509.SubjectKeyIdentifier(digest[: profile.key_identifier_bytes])


def _validity(
    profile: Profile,
    requested_days: int | None,
    ca_not_after: datetime.datetime,
    now: datetime.datetime,
) -> tuple[datetime.datetime, datetime.datetime]:
    days = requested_days or profile.default_validity_days
    if days <= 0:
        raise RequestRejected("validity_not_allowed", "the validity must be at least one day")
    days = min(days, profile.max_validity_days)
    not_before = now - datetime.timedelta(seconds=profile.backdate_seconds)
    not_after = min(now + datetime.timedelta(days=days), ca_not_after)
    if not_after <= now:
        raise RequestRejected("validity_not_allowed", "the issuing CA has expired")
    return not_before, not_after


def plan_certificate(
    profile: Profile,
    *,
    subject: x509.Name,
    requested_sans: list[x509.GeneralName],
    public_key: CertificatePublicKeyTypes,
    ca_not_after: datetime.datetime,
    requested_days: int | None = None,
    now: datetime.datetime | None = None,
) -> CertificatePlan:
    """Apply the profile to requested names and a key (from a CSR, or a renewed certificate)."""
    now = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    key = public_key
    algorithm = check_key(profile, key)
    subject = _check_subject(profile, subject)
    sans = _check_sans(profile, subject, requested_sans)
    not_before, not_after = _validity(profile, requested_days, ca_not_after, now)
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.KeyUsage.oid, True, _key_usage(key, profile)),
        x509.Extension(
            x509.ExtendedKeyUsage.oid,
            False,
            x509.ExtendedKeyUsage([EKU_OIDS[name] for name in profile.extended_key_usages]),
        ),
        x509.Extension(x509.SubjectKeyIdentifier.oid, False, _subject_key_identifier(key, profile)),
    ]
    if profile.basic_constraints:  # optional for end entities (RFC 5280 §4.2.1.9)
        extensions.insert(
            0, x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(False, None))
        )
    if sans:
        # RFC 5280 §4.2.1.6: the SAN extension is critical when the subject is empty.
        extensions.append(
            x509.Extension(
                x509.SubjectAlternativeName.oid,
                len(subject) == 0,
                x509.SubjectAlternativeName(list(sans)),
            )
        )
    return CertificatePlan(
        public_key=key,
        subject=subject,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
        extensions=tuple(extensions),
        key_algorithm=algorithm,
    )
