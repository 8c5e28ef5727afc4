"""Issue 8: the local engine's pre-encoded TBS path writes exactly the builder's TBSCertificate.

ECDSA signatures differ from one signing to the next, so the comparison is on TBS bytes for
the same serial, validity, keys and extensions; the template's certificates must also pass
openssl's strict verification and pkilint like the builder's.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from certbridge import SigningRequest
from certbridge.engines.local import LocalCAEngine
from certbridge.tbs_template import encode_integer, encode_time
from certplane.config import Settings
from certplane.policy import plan_certificate
from certplane.status.urls import StatusUrls, status_extensions

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.UTC)
PROFILE_CASES = {
    "device": (
        "node-00a1b2c3",
        [x509.DNSName("node-1.devices")],
    ),
    "compact": ("node-00a1b2c3d4e5", []),
    "server": (
        "api.example.com",
        [x509.DNSName("www.example.com"), x509.IPAddress(ipaddress.ip_address("10.1.2.3"))],
    ),
}
SERIALS = (1, 127, 128, 255, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000_00, 2**159 - 1)


def _request(
    engine: LocalCAEngine,
    profile_name: str,
    public_key,
    serial: int = 0x5A17_0000_0000_0001,
    extra_sans: tuple[x509.GeneralName, ...] = (),
) -> SigningRequest:
    settings = Settings.load()
    profile = settings.profiles_by_name[profile_name]
    common_name, sans = PROFILE_CASES[profile_name]
    plan = plan_certificate(
        profile,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        requested_sans=[*sans, *extra_sans],
        public_key=public_key,
        ca_not_after=engine.capabilities().ca_not_after,
        now=NOW,
    )
    status = status_extensions(profile, StatusUrls("http://status.test"), "local-dev", serial, 4)
    return SigningRequest(
        serial_number=serial,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions + status,
    )


def _template_tbs(engine: LocalCAEngine, request: SigningRequest) -> bytes | None:
    return engine._template.tbs(  # the private template is the unit under test
        serial_number=request.serial_number,
        subject=request.subject,
        public_key=request.public_key,
        not_before=request.not_before,
        not_after=request.not_after,
        extensions=request.extensions,
    )


@pytest.mark.parametrize("profile_name", sorted(PROFILE_CASES))
def test_template_tbs_equals_the_builders(local_engine, profile_name):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    # pkilint wrongly flags URN SANs, so they are checked here (TBS equality) only.
    urn = (x509.UniformResourceIdentifier("urn:dev:mac:00a1b2c3"),)
    request = _request(local_engine, profile_name, key, extra_sans=urn * (profile_name == "device"))
    builder_tbs = local_engine.issue_with_builder(request).tbs_certificate_bytes
    assert _template_tbs(local_engine, request) == builder_tbs
    issued = local_engine.issue(request).certificate
    assert issued.tbs_certificate_bytes == builder_tbs
    issued.verify_directly_issued_by(local_engine.chain()[0])


@pytest.mark.parametrize("serial", SERIALS)
def test_serial_encodings_match(local_engine, serial):
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    request = _request(local_engine, "device", key, serial=serial)
    assert _template_tbs(local_engine, request) == (
        local_engine.issue_with_builder(request).tbs_certificate_bytes
    )


def test_time_and_integer_primitives():
    assert encode_time(datetime.datetime(2049, 12, 31, 23, 59, 59)) == b"\x17\x0d491231235959Z"
    assert encode_time(datetime.datetime(2050, 1, 1, tzinfo=datetime.UTC))[:2] == b"\x18\x0f"
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert (
        encode_time(datetime.datetime(2030, 1, 1, 2, tzinfo=plus_two)) == b"\x17\x0d300101000000Z"
    )
    assert encode_integer(128) == b"\x02\x02\x00\x80"
    assert encode_integer(127) == b"\x02\x01\x7f"


def test_validity_past_2049_matches(local_engine):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    request = _request(local_engine, "compact", key)
    late = SigningRequest(
        serial_number=request.serial_number,
        public_key=key,
        subject=request.subject,
        not_before=datetime.datetime(2049, 12, 31, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2050, 6, 1, tzinfo=datetime.UTC),
        extensions=request.extensions,
    )
    assert (
        _template_tbs(local_engine, late)
        == local_engine.issue_with_builder(late).tbs_certificate_bytes
    )


def test_unsupported_requests_fall_back_to_the_builder(local_engine):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    request = _request(local_engine, "compact", key)
    policies = x509.Extension(
        x509.CertificatePolicies.oid,
        False,
        x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]
        ),
    )
    odd = [
        SigningRequest(**{**request.__dict__, "extensions": (*request.extensions, policies)}),
        SigningRequest(
            **{**request.__dict__, "not_before": request.not_before.replace(microsecond=5)}
        ),
    ]
    for item in odd:
        assert _template_tbs(local_engine, item) is None
        assert local_engine.issue(item).certificate.public_key() == key
    duplicate = SigningRequest(
        **{**request.__dict__, "extensions": request.extensions + request.extensions[:1]}
    )
    assert _template_tbs(local_engine, duplicate) is None
    with pytest.raises(ValueError):
        local_engine.issue(duplicate)


def test_mldsa_engine_keeps_the_builder(tmp_path):
    engine = LocalCAEngine("local-pqc", tmp_path / "pqc", algorithm="ML-DSA-44")
    assert engine._template is None


@pytest.mark.parametrize("profile_name", sorted(PROFILE_CASES))
def test_template_certificates_pass_openssl_strict_and_pkilint(
    local_engine, tmp_path, profile_name
):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    request = _request(local_engine, profile_name, key)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    request = SigningRequest(
        **{
            **request.__dict__,
            "not_before": now - datetime.timedelta(minutes=5),
            "not_after": now + datetime.timedelta(days=30),
        }
    )
    certificate = local_engine.issue(request).certificate
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca = tmp_path / "ca-local-dev"
    lint = subprocess.run(
        [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(leaf)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout
    purpose = "sslserver" if profile_name == "server" else "sslclient"
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            str(ca / "root.pem"),
            "-untrusted",
            str(ca / "issuing.pem"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": OK"), verify.stderr
