"""Issue 3 part A: the xPKI Certifier API driven the way libCertifier v2.2.1 drives it.

Requests are API Gateway proxy events made by the dev front's own event builder, carrying
exactly the client's headers, pretty JSON (with `\\/`) and X509/SAT tokens (tests/certifier_wire).
Replies are checked with openssl and pkilint; every bad input must be a clean 4xx that writes
nothing to the inventory, issues no certificate and logs the tracking id with the reason.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge.engines.local import LocalCAEngine
from certplane.auth import CredentialKind, CredentialStore
from certplane.config import Settings
from certplane.dev.front import proxy_event
from certplane.dev.lambda_host import DevLambdaContext
from certplane.enroll.certifier import CertifierApi
from certplane.enroll.certifier.app import SERVICE, UnsupportedChain, chain_reply
from certplane.inventory import CertificateRecord
from certplane.runtime import Runtime
from tests.certifier_wire import (
    b64,
    certificate_request,
    headers,
    libcertifier_csr,
    now_ms,
    pretty_json,
    random_value,
    revoke_request,
    sat_token,
    x509_token,
)
from tests.conftest import EventTap, LifecycleFactory, new_key

TENANT = "default"
STRICT_TENANT = "acme"  # has no default profile
LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
MAX_COMPACT_DER = 450
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")


# -- PKI material the tests make themselves ------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def make_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=1))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def make_seed(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    name: str = "seed-0001",
    not_after: datetime.datetime | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A factory seed naming `ca` as issuer (AKI); `signer` forges it with another key."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=30))
        .not_valid_after(not_after or _now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(signer or ca_key, hashes.SHA256())
    )
    return certificate, key


def sha1_hex(certificate: x509.Certificate) -> str:
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


# -- the harness: one API, one bootstrap CA, one seed ---------------------------------------


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    tracking_id: str

    @property
    def chain(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(
            "".join(PEM_BLOCK.findall(print_certs(self.body["certificateChain"]))).encode()
        )


@dataclass
class Enrolled:
    reply: Reply
    key: ec.EllipticCurvePrivateKey

    @property
    def leaf(self) -> x509.Certificate:
        return self.reply.chain[0]

    @property
    def certificate_id(self) -> str:
        return self.reply.body["certificateId"]


@dataclass
class Harness:
    api: CertifierApi
    runtime: Runtime
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    seed: x509.Certificate
    seed_key: ec.EllipticCurvePrivateKey
    engine: LocalCAEngine
    sent: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        document: dict[str, Any] | None = None,
        *,
        bearer: str | None = None,
        raw: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {**headers(bearer), **(extra_headers or {})}
        if method == "GET":  # the status call sends no headers and no body
            sent = {}
        body = raw if raw is not None else pretty_json(document).encode() if document else b""
        event = proxy_event(method, f"/v1/certifier{path}", sent, body, "127.0.0.1")
        response = self.api.handle(event, DevLambdaContext(function_name="certifier-tests"))
        assert response["statusCode"] < 500, response
        tracking = sent.get("x-xpki-tracking-id", "")
        self.sent.append(tracking)
        return Reply(response["statusCode"], json.loads(response["body"]), tracking)

    def seed_token(self, **kwargs: Any) -> str:
        return x509_token(self.seed, self.seed_key, **kwargs)

    def enroll(self, key: Any = None, *, bearer: str | None = None, **fields: Any) -> Enrolled:
        key = key or ec.generate_private_key(ec.SECP256R1())
        reply = self.call(
            "POST",
            "/certificate",
            certificate_request(libcertifier_csr(key), **fields),
            bearer=bearer or self.seed_token(),
        )
        assert reply.status == 200, reply.body
        return Enrolled(reply, key)

    def renew(self, enrolled: Enrolled, **token: Any) -> Reply:
        bearer = x509_token(enrolled.leaf, enrolled.key, **token)
        return self.call(
            "POST", "/renew", {"certificateId": enrolled.certificate_id}, bearer=bearer
        )

    def revoke(self, enrolled: Enrolled) -> Reply:
        bearer = x509_token(enrolled.leaf, enrolled.key)
        return self.call("POST", "/revoke", revoke_request(enrolled.certificate_id), bearer=bearer)

    def status(self, certificate_id: str) -> str:
        reply = self.call("GET", f"/certificate/status/{certificate_id}")
        assert reply.status == 200, reply.body
        return reply.body["status"]


def two_tenant_settings() -> Settings:
    data = Settings.load().model_dump()
    data["tenants"].append({"id": STRICT_TENANT, "profiles": ["device", "compact"]})
    return Settings.model_validate(data)


@pytest.fixture
def xpki(make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine) -> Harness:
    settings = two_tenant_settings()
    runtime = Runtime(
        settings=settings,
        lifecycle=make_lifecycle(settings, {"local-dev": local_engine}),
        credentials=CredentialStore(),
    )
    ca, ca_key = make_ca("Factory Bootstrap CA")
    runtime.credentials.trust_bootstrap_ca(TENANT, ca)
    seed, seed_key = make_seed(ca, ca_key)
    return Harness(CertifierApi(runtime), runtime, ca, ca_key, seed, seed_key, local_engine)


def inventory_size(tenant: str = TENANT) -> int:
    return sum(1 for _ in CertificateRecord.by_tenant.query(tenant))


def print_certs(pkcs7_pem: str) -> str:
    result = subprocess.run(
        ["openssl", "pkcs7", "-print_certs"],
        input=pkcs7_pem,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def openssl_verify(tmp_path: Path, chain: list[x509.Certificate]) -> subprocess.CompletedProcess:
    leaf, issuing, root = chain
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(write_pem(tmp_path / "root.pem", root)),
            "-untrusted",
            str(write_pem(tmp_path / "issuing.pem", issuing)),
            str(write_pem(tmp_path / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
    )


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def public_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the happy paths ----------------------------------------------------------------------


def test_enroll_replies_with_three_certificates_leaf_first(
    xpki: Harness, events: EventTap, tmp_path: Path
) -> None:
    enrolled = xpki.enroll(nodeAddress="1Hm3Xz9", nodeId="CCCCCCCCCCCCCCCC", validityDays=365)
    reply = enrolled.reply

    # openssl reads the PKCS#7: exactly leaf, issuing CA, root, in that order.
    printed = print_certs(reply.body["certificateChain"])
    assert len(PEM_BLOCK.findall(printed)) == 3
    leaf, issuing, root = reply.chain
    assert (issuing, root) == xpki.engine.chain()
    subjects = re.findall(r"^subject=.*$", printed, re.M)
    assert len(subjects) == 3
    for certificate, line in zip(reply.chain, subjects, strict=True):
        assert line.endswith(f"CN = {common_name(certificate)}"), subjects
    assert reply.body["certificateId"] == sha1_hex(leaf)
    assert common_name(leaf) == "1Hm3Xz9"
    assert public_der(leaf) == enrolled.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verified = openssl_verify(tmp_path, reply.chain)
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified.stderr

    record = xpki.runtime.lifecycle.get(TENANT, reply.body["certificateId"])
    assert record.profile == "device"  # XFN_Matter_OP_Class_3_ICA is an alias of device
    assert record.device_id == "CCCCCCCCCCCCCCCC"
    assert record.requester == f"certifier:x509:{sha1_hex(xpki.seed)}"
    assert record.tag_dict["productId"] == "1101"
    assert record.tag_dict["xpkiSource"] == "libcertifier-opensource"
    assert xpki.status(reply.body["certificateId"]) == "GOOD"
    assert [kind for kind, _ in events()] == ["Certificate Issued"]


def test_certificate_lite_is_compact_small_and_lint_clean(
    xpki: Harness, events: EventTap, tmp_path: Path
) -> None:
    enrolled = xpki.enroll(
        nodeAddress="1Hm3Xz9", fabricId="DDDDDDDDDDDDDDDD", certificateLite="true", useScopes="true"
    )
    leaf = enrolled.leaf
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert len(der) <= MAX_COMPACT_DER, len(der)
    record = xpki.runtime.lifecycle.get(TENANT, enrolled.certificate_id)
    assert record.profile == "compact"
    assert record.tag_dict["fabricId"] == "DDDDDDDDDDDDDDDD"
    lint = subprocess.run(
        [
            LINT_PKIX_CERT,
            "lint",
            "-s",
            "WARNING",
            "-f",
            "JSON",
            write_pem(tmp_path / "c.pem", leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout
    verified = openssl_verify(tmp_path, enrolled.reply.chain)
    assert verified.returncode == 0, verified.stderr
    assert [kind for kind, _ in events()] == ["Certificate Issued"]


def test_renew_keeps_the_key_and_supersedes_then_revoke_and_status(
    xpki: Harness, events: EventTap
) -> None:
    enrolled = xpki.enroll()
    events()
    renewed = xpki.renew(enrolled)
    assert renewed.status == 200, renewed.body
    new_leaf = renewed.chain[0]
    assert len(renewed.chain) == 3
    assert public_der(new_leaf) == public_der(enrolled.leaf)
    assert new_leaf.subject == enrolled.leaf.subject
    assert renewed.body["certificateId"] == sha1_hex(new_leaf) != enrolled.certificate_id
    old = xpki.runtime.lifecycle.get(TENANT, enrolled.certificate_id)
    assert old.status == "SUPERSEDED"
    assert xpki.status(enrolled.certificate_id) == "GOOD"  # superseded, not revoked
    assert [kind for kind, _ in events()] == ["Certificate Renewed"]

    current = Enrolled(renewed, enrolled.key)
    assert xpki.status(current.certificate_id) == "GOOD"
    revoked = xpki.revoke(current)
    assert revoked.status == 200, revoked.body
    assert revoked.body["status"] == "REVOKED"
    assert revoked.body["revocationReason"] == "unspecified"
    assert xpki.status(current.certificate_id) == "REVOKED"
    kinds = events()
    assert [kind for kind, _ in kinds] == ["Certificate Revoked"]
    assert kinds[0][1]["revocation"]["reason"] == "unspecified"


@pytest.mark.parametrize(
    ("xpki_reason", "rfc_reason"),
    [("KEY_COMPROMISE", "keyCompromise"), ("CESSATION_OF_OPERATION", "cessationOfOperation")],
)
def test_revoke_reason_names_map_to_rfc5280(
    xpki: Harness, xpki_reason: str, rfc_reason: str
) -> None:
    enrolled = xpki.enroll()
    reply = xpki.call(
        "POST",
        "/revoke",
        {"revokeReason": xpki_reason, "certificateId": enrolled.certificate_id},
        bearer=x509_token(enrolled.leaf, enrolled.key),
    )
    assert reply.status == 200 and reply.body["revocationReason"] == rfc_reason


def test_sat_token_enrolls_renews_and_revokes(xpki: Harness, events: EventTap) -> None:
    token = xpki.runtime.credentials.create_token(
        TENANT, "sat-fleet", ("enroll",), CredentialKind.SAT
    )
    enrolled = xpki.enroll(bearer=sat_token(token))
    assert xpki.runtime.lifecycle.get(TENANT, enrolled.certificate_id).requester == (
        "certifier:sat:sat-fleet"
    )
    renewed = xpki.call(
        "POST", "/renew", {"certificateId": enrolled.certificate_id}, bearer=sat_token(token)
    )
    assert renewed.status == 200 and public_der(renewed.chain[0]) == public_der(enrolled.leaf)
    revoked = xpki.call(
        "POST",
        "/revoke",
        revoke_request(renewed.body["certificateId"]),
        bearer=sat_token(token),
    )
    assert revoked.status == 200
    assert [kind for kind, _ in events()] == [
        "Certificate Issued",
        "Certificate Renewed",
        "Certificate Revoked",
    ]


def test_requested_names_become_sans_checked_by_the_profile(xpki: Harness) -> None:
    enrolled = xpki.enroll(nodeAddress="1Hm3Xz9", dnsNames=["Sensor-7.device"])
    sans = enrolled.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["sensor-7.device"]
    assert common_name(enrolled.leaf) == "1Hm3Xz9"


def test_a_chain_libcertifier_cannot_take_is_not_sent(xpki: Harness) -> None:
    """An issuing CA + root is the only shape the client accepts (any other: silent failure)."""
    enrolled = xpki.enroll()
    record = xpki.runtime.lifecycle.get(TENANT, enrolled.certificate_id)
    assert chain_reply(record)["certificateId"] == enrolled.certificate_id
    issuing, _root = xpki.engine.chain()
    record.chain_pem = issuing.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(UnsupportedChain):
        chain_reply(record)


def test_unknown_profile_uses_the_tenant_default(xpki: Harness) -> None:
    enrolled = xpki.enroll(profileName="no-such-profile")
    assert xpki.runtime.lifecycle.get(TENANT, enrolled.certificate_id).profile == "device"


def test_seed_binds_the_tenant_whose_bootstrap_ca_signed_it(xpki: Harness) -> None:
    ca, ca_key = make_ca("Acme Factory CA")
    xpki.runtime.credentials.trust_bootstrap_ca(STRICT_TENANT, ca)
    seed, seed_key = make_seed(ca, ca_key, name="acme-seed")
    enrolled = xpki.enroll(profileName="Device", bearer=x509_token(seed, seed_key))
    assert xpki.runtime.lifecycle.get(STRICT_TENANT, enrolled.certificate_id).tenant == (
        STRICT_TENANT
    )
    assert inventory_size(TENANT) == 0

    # acme has no default profile: an unknown one is refused before anything is written.
    before = inventory_size(STRICT_TENANT)
    reply = xpki.call(
        "POST",
        "/certificate",
        certificate_request(libcertifier_csr(new_key("P-256")), profileName="nope"),
        bearer=x509_token(seed, seed_key),
    )
    assert reply.status == 400 and reply.body["error"]["code"] == "unknown_profile"
    assert inventory_size(STRICT_TENANT) == before


def test_status_of_an_unknown_id_is_unknown_and_needs_no_auth(xpki: Harness) -> None:
    assert xpki.status("0" * 40) == "UNKNOWN"
    assert xpki.call("GET", "/certificate/status/not-a-sha1").status == 400


def test_refusals_are_logged_with_the_tracking_id(
    xpki: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE)
    reply = xpki.call("POST", "/certificate", {"csr": "x"}, bearer="garbage")
    assert reply.status == 401
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(SERVICE)]
    assert any(
        reply.tracking_id in line and "malformed_token" in line and "401" in line for line in lines
    ), lines
    record = next(r for r in caplog.records if reply.tracking_id in r.getMessage())
    assert getattr(record, "x-xpki-tracking-id") == reply.tracking_id
    assert record.reason


# -- bad input: each a clean 4xx, nothing written, nothing issued -------------------------


def corrupt_signature(der: bytes) -> bytes:
    """Flip a bit inside the last INTEGER of the ECDSA signature (DER stays well formed)."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


def _expired_seed(h: Harness) -> str:
    seed, key = make_seed(h.ca, h.ca_key, not_after=_now() - datetime.timedelta(days=1))
    return x509_token(seed, key)


def _foreign_seed(h: Harness) -> str:
    ca, ca_key = make_ca("Untrusted CA")
    return x509_token(*make_seed(ca, ca_key))


def _forged_seed(h: Harness) -> str:
    """Names the trusted CA as issuer (AKI) but is signed by another key."""
    return x509_token(*make_seed(h.ca, h.ca_key, signer=ec.generate_private_key(ec.SECP256R1())))


def _wrong_key_token(h: Harness) -> str:
    return x509_token(h.seed, ec.generate_private_key(ec.SECP256R1()))


def _csr(kind: str = "P-256") -> bytes:
    return libcertifier_csr(new_key(kind))


BAD_ENROLLMENTS: dict[str, tuple[Any, Any, int, str]] = {
    # name: (body(h), bearer(h), status, error code)
    "csr not base64": (
        lambda h: certificate_request(b"", csr="%%%not*base64%%%"),
        lambda h: h.seed_token(),
        400,
        "malformed_csr",
    ),
    "csr signature fails": (
        lambda h: certificate_request(corrupt_signature(_csr())),
        lambda h: h.seed_token(),
        400,
        "invalid_csr_signature",
    ),
    "P-384 key for the compact profile": (
        lambda h: certificate_request(_csr("P-384"), certificateLite="true"),
        lambda h: h.seed_token(),
        400,
        "unsupported_key",
    ),
    "P-192 key": (
        lambda h: certificate_request(_csr("P-192")),
        lambda h: h.seed_token(),
        400,
        "unsupported_key",
    ),
    "no nodeAddress and an empty CSR subject": (
        lambda h: {k: v for k, v in certificate_request(_csr()).items() if k != "nodeAddress"},
        lambda h: h.seed_token(),
        400,
        "subject_not_allowed",
    ),
    "SAN the profile forbids": (
        lambda h: certificate_request(_csr(), certificateLite="true", dnsNames=["a.device"]),
        lambda h: h.seed_token(),
        400,
        "san_not_allowed",
    ),
    "validityDays not a number": (
        lambda h: certificate_request(_csr(), validityDays="a year"),
        lambda h: h.seed_token(),
        400,
        "invalid_request",
    ),
    "token not base64": (
        lambda h: certificate_request(_csr()),
        lambda h: "%%%not-base64%%%",
        401,
        "malformed_token",
    ),
    "token base64 but not JSON": (
        lambda h: certificate_request(_csr()),
        lambda h: b64(b"\x30\x82 not json"),
        401,
        "malformed_token",
    ),
    "token certificate not base64": (
        lambda h: certificate_request(_csr()),
        lambda h: b64(
            pretty_json(
                {
                    "tokenType": "X509",
                    "certificate": "***",
                    "timestamp": str(now_ms()),
                    "nonce": random_value(),
                    "signature": "MEUCIQ==",
                }
            ).encode()
        ),
        401,
        "malformed_token",
    ),
    "unknown token type": (
        lambda h: certificate_request(_csr()),
        lambda h: b64(pretty_json({"tokenType": "JWT", "token": "x"}).encode()),
        401,
        "malformed_token",
    ),
    "missing Authorization": (
        lambda h: certificate_request(_csr()),
        lambda h: None,
        401,
        "missing_token",
    ),
    "signature by another key": (
        lambda h: certificate_request(_csr()),
        _wrong_key_token,
        401,
        "invalid_signature",
    ),
    "expired seed": (
        lambda h: certificate_request(_csr()),
        _expired_seed,
        401,
        "certificate_expired",
    ),
    "foreign seed": (
        lambda h: certificate_request(_csr()),
        _foreign_seed,
        401,
        "untrusted_certificate",
    ),
    "forged seed naming the trusted CA": (
        lambda h: certificate_request(_csr()),
        _forged_seed,
        401,
        "untrusted_certificate",
    ),
    "stale timestamp": (
        lambda h: certificate_request(_csr()),
        lambda h: h.seed_token(timestamp_ms=now_ms() - 6 * 60 * 1000),
        401,
        "stale_token",
    ),
    "timestamp from the future": (
        lambda h: certificate_request(_csr()),
        lambda h: h.seed_token(timestamp_ms=now_ms() + 6 * 60 * 1000),
        401,
        "stale_token",
    ),
    "unknown SAT": (
        lambda h: certificate_request(_csr()),
        lambda h: sat_token("never-issued"),
        401,
        "unknown_token",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ENROLLMENTS))
def test_bad_enrollment_is_a_clean_4xx_with_nothing_written(
    xpki: Harness, events: EventTap, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE)
    make_body, make_bearer, status, code = BAD_ENROLLMENTS[case]
    reply = xpki.call("POST", "/certificate", make_body(xpki), bearer=make_bearer(xpki))
    assert (reply.status, reply.body["error"]["code"]) == (status, code), reply.body
    assert inventory_size() == 0
    assert not [kind for kind, _ in events() if kind != "Certificate Issuance Failed"]
    assert any(
        reply.tracking_id in r.getMessage() and code in r.getMessage() for r in caplog.records
    )


def test_replayed_nonce_is_refused(xpki: Harness) -> None:
    bearer = xpki.seed_token()
    body = certificate_request(_csr())
    assert xpki.call("POST", "/certificate", body, bearer=bearer).status == 200
    replay = xpki.call("POST", "/certificate", body, bearer=bearer)
    assert (replay.status, replay.body["error"]["code"]) == (401, "replayed_nonce")
    assert inventory_size() == 1


def test_oversized_body_is_413(xpki: Harness) -> None:
    body = certificate_request(_csr(), padding="A" * (64 * 1024))
    reply = xpki.call("POST", "/certificate", body, bearer=xpki.seed_token())
    assert (reply.status, reply.body["error"]["code"]) == (413, "payload_too_large")
    assert inventory_size() == 0


def test_renew_and_revoke_refusals(xpki: Harness, events: EventTap) -> None:
    enrolled = xpki.enroll()
    other = xpki.enroll()
    events()
    size = inventory_size()

    # A certificate id we never issued (the seed's own), signed by that certificate: 404.
    stranger = xpki.call(
        "POST", "/renew", {"certificateId": sha1_hex(xpki.seed)}, bearer=xpki.seed_token()
    )
    assert (stranger.status, stranger.body["error"]["code"]) == (404, "certificate_not_found")
    # The token names one certificate, the body another: 403.
    mismatch = xpki.call(
        "POST",
        "/renew",
        {"certificateId": other.certificate_id},
        bearer=x509_token(enrolled.leaf, enrolled.key),
    )
    assert (mismatch.status, mismatch.body["error"]["code"]) == (403, "certificate_mismatch")
    # A malformed certificate id and an unknown revoke reason: 400.
    malformed = xpki.call(
        "POST", "/renew", {"certificateId": "xyz"}, bearer=x509_token(enrolled.leaf, enrolled.key)
    )
    assert malformed.status == 400
    reason = xpki.call(
        "POST",
        "/revoke",
        {"revokeReason": "CA_COMPROMISE", "certificateId": enrolled.certificate_id},
        bearer=x509_token(enrolled.leaf, enrolled.key),
    )
    assert (reason.status, reason.body["error"]["code"]) == (400, "invalid_reason")
    stale = xpki.renew(enrolled, timestamp_ms=now_ms() - 10 * 60 * 1000)
    assert (stale.status, stale.body["error"]["code"]) == (401, "stale_token")
    # A SAT may only act on certificates of its own tenant.
    acme_sat = xpki.runtime.credentials.create_token(
        STRICT_TENANT, "acme-fleet", ("enroll",), CredentialKind.SAT
    )
    foreign = xpki.call(
        "POST", "/revoke", revoke_request(enrolled.certificate_id), bearer=sat_token(acme_sat)
    )
    assert foreign.status == 404
    assert inventory_size() == size
    assert xpki.status(enrolled.certificate_id) == "GOOD"

    # Once revoked, the certificate can neither renew nor revoke again.
    assert xpki.revoke(enrolled).status == 200
    events()
    revoked_renewal = xpki.renew(enrolled)
    assert (revoked_renewal.status, revoked_renewal.body["error"]["code"]) == (
        401,
        "certificate_not_live",
    )
    assert xpki.revoke(enrolled).status == 401
    assert inventory_size() == size
    assert events() == []


def test_a_revoked_certificate_cannot_serve_as_a_seed(xpki: Harness, events: EventTap) -> None:
    """Seeds are outside our inventory, except when a tenant trusts our own CA for seeds."""
    issuing = xpki.engine.chain()[0]
    xpki.runtime.credentials.trust_bootstrap_ca(TENANT, issuing)
    device = xpki.enroll()
    as_seed = xpki.enroll(bearer=x509_token(device.leaf, device.key))
    assert as_seed.reply.status == 200
    assert xpki.revoke(device).status == 200
    size = inventory_size()
    refused = xpki.call(
        "POST",
        "/certificate",
        certificate_request(_csr()),
        bearer=x509_token(device.leaf, device.key),
    )
    assert (refused.status, refused.body["error"]["code"]) == (401, "certificate_revoked")
    assert inventory_size() == size


GARBAGE_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{",
    b'{"csr": 5}',
    b'{"csr": "' + b"A" * 20000 + b'"}',
    b"\xff\xfe\x00garbage",
    b"[" * 5000,
    b'{"certificateId": null}',
]
GARBAGE_HEADERS = [
    None,
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer " + b64(b"[" * 5000),
    "Bearer " + b64(b'{"tokenType": "X509"}'),
    "Bearer " + b64(b'{"tokenType": "SAT", "token": "t", "nonce": "n", "timestamp": 1e300}'),
    "Bearer " + "A" * 40000,
]


@pytest.mark.parametrize("path", ["/certificate", "/renew", "/revoke"])
def test_garbage_never_yields_a_5xx(xpki: Harness, path: str) -> None:
    for raw in GARBAGE_BODIES:
        for authorization in GARBAGE_HEADERS:
            reply = xpki.call(
                "POST",
                path,
                raw=raw,
                bearer=None,
                extra_headers={"Authorization": authorization} if authorization else None,
            )
            assert 400 <= reply.status < 500 and "error" in reply.body
    assert inventory_size() == 0
