"""Lint before sign: each rule refuses a request that breaks it, and a sound request passes."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge import Capabilities, EngineRouter, PermanentEngineError, SigningRequest
from certbridge.lint import lint_signing_request

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
CAPABILITIES = Capabilities(
    engine_type="test",
    signing_algorithm="ecdsa-with-SHA256",
    subject_key_algorithms=("P-256",),
    max_validity=datetime.timedelta(days=3650),
    ca_not_after=NOW + datetime.timedelta(days=3650),
    supports_revocation=True,
    supports_crl_signing=False,
)


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def sound_request(**changes) -> SigningRequest:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    request = SigningRequest(
        serial_number=12345,
        public_key=key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")]),
        not_before=NOW,
        not_after=NOW + datetime.timedelta(days=30),
        extensions=(
            x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(False, None)),
            x509.Extension(x509.KeyUsage.oid, True, _key_usage(digital_signature=True)),
            x509.Extension(
                x509.ExtendedKeyUsage.oid,
                False,
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
            ),
        ),
    )
    return dataclasses.replace(request, **changes)


def test_a_sound_request_passes() -> None:
    lint_signing_request(sound_request(), CAPABILITIES)


def _with(extension_type, value, critical=True):
    base = [e for e in sound_request().extensions if e.oid != extension_type.oid]
    return tuple([*base, x509.Extension(extension_type.oid, critical, value)])


BROKEN = {
    "zero serial": {"serial_number": 0},
    "negative serial": {"serial_number": -5},
    "21-octet serial": {"serial_number": 1 << 160},
    "inverted validity": {"not_before": NOW + datetime.timedelta(days=40)},
    "outlives the CA": {"not_after": NOW + datetime.timedelta(days=4000)},
    "already expired": {
        "not_before": NOW - datetime.timedelta(days=10),
        "not_after": NOW - datetime.timedelta(days=1),
    },
    "CA basic constraints": {
        "extensions": _with(x509.BasicConstraints, x509.BasicConstraints(True, 0))
    },
    "keyCertSign": {
        "extensions": _with(x509.KeyUsage, _key_usage(digital_signature=True, key_cert_sign=True))
    },
    "EKU without signing usage": {
        "extensions": _with(x509.KeyUsage, _key_usage(key_encipherment=True))
    },
    "duplicate extension": {"extensions": sound_request().extensions * 2},
    "no subject and no SAN": {"subject": x509.Name([])},
    "malformed DNS name": {
        "extensions": _with(
            x509.SubjectAlternativeName, x509.SubjectAlternativeName([x509.DNSName("a..b")]), False
        )
    },
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_each_rule_refuses(case: str) -> None:
    with pytest.raises(PermanentEngineError):
        lint_signing_request(sound_request(**BROKEN[case]), CAPABILITIES)


def test_the_router_lints_before_any_engine_signs() -> None:
    class RecordingEngine:
        engine_id = "rec"
        signed = 0

        def capabilities(self) -> Capabilities:
            return CAPABILITIES

        def issue(self, request):  # pragma: no cover - must not be reached
            RecordingEngine.signed += 1

    with pytest.raises(PermanentEngineError):
        EngineRouter({"rec": RecordingEngine()}).issue(["rec"], sound_request(serial_number=0))
    assert RecordingEngine.signed == 0
