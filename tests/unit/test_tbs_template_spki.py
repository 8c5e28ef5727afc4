"""Issue 8: the TBS template reuses the SubjectPublicKeyInfo the device sent in its CSR.

It may do so only when those bytes are exactly what the builder would encode for the approved
key; any other CSR (another key, a compressed point, garbage) must leave the certificate as
the builder writes it, with the approved key.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certbridge import SigningRequest
from certbridge.der import csr_subject_public_key_info
from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.policy import plan_certificate

NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.UTC)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
KEYS = {
    "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
}
# (profile, key): "device" uses RFC 5280's SHA-1 key id, "compact" RFC 7093's truncated SHA-256.
CASES = [("device", "P-256"), ("device", "P-384"), ("device", "Ed25519"), ("compact", "P-256")]


def _csr_der(private_key) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-00a1b2c3")])
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(private_key, algorithm)
    return csr.public_bytes(serialization.Encoding.DER)


def _request(engine: LocalCAEngine, profile_name: str, public_key, csr_der: bytes | None):
    plan = plan_certificate(
        Settings.load().profiles_by_name[profile_name],
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-00a1b2c3")]),
        requested_sans=[],
        public_key=public_key,
        ca_not_after=engine.capabilities().ca_not_after,
        now=NOW,
    )
    return SigningRequest(
        serial_number=0x5A17_0000_0000_0002,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
        csr_der=csr_der,
    )


def _tbs(engine: LocalCAEngine, request: SigningRequest, public_key, spki: bytes | None):
    return engine._template.tbs(  # the private template is the unit under test
        serial_number=request.serial_number,
        subject=request.subject,
        public_key=public_key,
        not_before=request.not_before,
        not_after=request.not_after,
        extensions=request.extensions,
        subject_public_key_info=spki,
    )


class _NoEncoding:
    """Stands in for the key when the template must not encode it (the CSR bytes suffice)."""


def test_csr_spki_is_the_keys_der_byte_for_byte():
    for make in (*KEYS.values(), lambda: rsa.generate_private_key(65537, 2048)):
        private_key = make()
        spki = csr_subject_public_key_info(_csr_der(private_key))
        assert spki == private_key.public_key().public_bytes(*SPKI)


@pytest.mark.parametrize(("profile_name", "algorithm"), CASES)
def test_reused_spki_gives_the_builders_tbs(local_engine, profile_name, algorithm):
    private_key = KEYS[algorithm]()
    csr_der = _csr_der(private_key)
    request = _request(local_engine, profile_name, private_key.public_key(), csr_der)
    builder_tbs = local_engine.issue_with_builder(request).tbs_certificate_bytes
    spki = csr_subject_public_key_info(csr_der)
    # No key object to encode: equality proves the CSR's bytes were used as they are.
    assert _tbs(local_engine, request, _NoEncoding(), spki) == builder_tbs
    issued = local_engine.issue(request).certificate
    assert issued.tbs_certificate_bytes == builder_tbs
    issued.verify_directly_issued_by(local_engine.chain()[0])


def test_a_csr_of_another_key_cannot_change_the_certificates_key(local_engine):
    approved = ec.generate_private_key(ec.SECP256R1()).public_key()
    other = _csr_der(ec.generate_private_key(ec.SECP256R1()))
    for profile_name in ("device", "compact"):
        request = _request(local_engine, profile_name, approved, other)
        certificate = local_engine.issue(request).certificate
        assert certificate.public_key() == approved
        assert certificate.tbs_certificate_bytes == (
            local_engine.issue_with_builder(request).tbs_certificate_bytes
        )


def test_non_canonical_or_broken_key_bytes_fall_back_to_encoding(local_engine):
    private_key = ec.generate_private_key(ec.SECP256R1())
    key = private_key.public_key()
    request = _request(local_engine, "compact", key, None)
    builder_tbs = local_engine.issue_with_builder(request).tbs_certificate_bytes
    compressed = bytes.fromhex(
        "3039301306072a8648ce3d020106082a8648ce3d030107032200"
    ) + key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    canonical = key.public_bytes(*SPKI)
    for spki in (compressed, canonical[:-1] + b"\x00", canonical[:40], b"", None):
        assert _tbs(local_engine, request, key, spki) == builder_tbs
    for csr_der in (b"\x30", b"\x30\x03\x02\x01\x00", _csr_der(private_key)[:30]):
        broken = dataclasses.replace(request, csr_der=csr_der)
        assert local_engine.issue(broken).certificate.tbs_certificate_bytes == builder_tbs


def test_without_a_key_identifier_the_key_is_encoded(local_engine):
    private_key = ec.generate_private_key(ec.SECP256R1())
    request = _request(local_engine, "device", private_key.public_key(), _csr_der(private_key))
    bare = dataclasses.replace(
        request,
        extensions=tuple(
            extension
            for extension in request.extensions
            if not isinstance(extension.value, x509.SubjectKeyIdentifier)
        ),
    )
    spki = csr_subject_public_key_info(request.csr_der)
    with pytest.raises(AttributeError):
        _tbs(local_engine, bare, _NoEncoding(), spki)  # tries to encode: nothing binds the CSR
    assert _tbs(local_engine, bare, private_key.public_key(), spki) == (
        local_engine.issue_with_builder(bare).tbs_certificate_bytes
    )
