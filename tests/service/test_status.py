"""Revocation and status against moto: sharded CRLs, the OCSP responder, short-lived certs.

Checked by independent tools: `openssl verify -crl_check` (shard and full CRL), pkilint's
`lint_crl` and `lint_ocsp_response`, `lint_pkix_cert`; protocol details (nonce, CertID hash,
Cache-Control, error statuses) are read back with cryptography's parsers.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certbridge.engines.local import LocalCAEngine
from certbridge.interface import crl_signer
from certplane.config import Settings
from certplane.inventory import CertificateRecord
from certplane.lifecycle import IssueRequest, Lifecycle
from certplane.status.crl import CrlPublisher, gcd_write_shards
from certplane.status.ocsp import MAX_REQUEST_BYTES, OcspResponder
from certplane.status.ocsp_signer import OcspSigners
from certplane.status.store import STATUS_BUCKET_DEFAULT, StatusStore
from certplane.status.urls import STATUS_URL_ENV, StatusUrls

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

BIN = Path(sys.executable).parent
BASE = "http://status.certplane.test"
SHARDS = 4


@dataclass
class Clock:
    """Injectable time: CRLs and OCSP responses are dated by it."""

    now: datetime.datetime

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclass
class Status:
    lifecycle: Lifecycle
    publisher: CrlPublisher
    responder: OcspResponder
    store: StatusStore
    engine: LocalCAEngine
    clock: Clock
    folder: Path

    def issue(
        self, profile: str = "device", name: str = "device-0001", key=None
    ) -> x509.Certificate:
        from tests.conftest import csr_pem, new_key

        record = self.lifecycle.issue(
            IssueRequest(
                tenant="default",
                profile=profile,
                csr=csr_pem(key or new_key("P-256"), name),
                requester="tests",
            )
        )
        return x509.load_pem_x509_certificate((record.certificate_pem or "").encode())

    def revoke(self, certificate: x509.Certificate, reason: str = "keyCompromise") -> None:
        self.lifecycle.revoke("default", format(certificate.serial_number, "x"), reason, "tests")

    def crl_at(self, key: str) -> x509.CertificateRevocationList:
        found = self.store.get(key)
        assert found is not None, key
        return x509.load_der_x509_crl(found[0])

    def write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def ocsp_request(
        self,
        certificate: x509.Certificate,
        algorithm: hashes.HashAlgorithm | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        algorithm = algorithm or hashes.SHA256()
        builder = ocsp.OCSPRequestBuilder().add_certificate(
            certificate, self.engine.chain()[0], algorithm
        )
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.fixture
def status(
    aws, make_lifecycle, settings: Settings, local_engine: LocalCAEngine, monkeypatch, tmp_path
) -> Status:
    monkeypatch.setenv(STATUS_URL_ENV, BASE)
    aws.session.client("s3").create_bucket(Bucket=STATUS_BUCKET_DEFAULT)
    lifecycle = make_lifecycle(settings, {"local-dev": local_engine})
    clock = Clock(datetime.datetime.now(datetime.UTC))
    store = StatusStore(client=aws.session.client("s3"))
    crl = CrlPublisher(
        settings,
        lifecycle.inventory,
        lifecycle.router,
        lifecycle.publisher,
        store,
        StatusUrls(BASE),
        clock,
    )
    signers = OcspSigners(settings, lifecycle.router, tmp_path / "ocsp", clock)
    responder = OcspResponder(settings, lifecycle.inventory, lifecycle.router, signers, clock)
    return Status(lifecycle, crl, responder, store, local_engine, clock, tmp_path)


def pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def openssl_verify(
    status: Status, leaf: x509.Certificate, crl: Path
) -> subprocess.CompletedProcess:
    issuing, root = status.engine.chain()
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-crl_check",
            "-CAfile",
            str(pem(status.folder / "root.pem", root)),
            "-untrusted",
            str(pem(status.folder / "issuing.pem", issuing)),
            "-CRLfile",
            str(crl),
            str(pem(status.folder / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
    )


def findings(tool: str, *args: str) -> list:
    result = subprocess.run(
        [str(BIN / tool), "lint", "-s", "WARNING", "-f", "JSON", *args],
        capture_output=True,
        text=True,
    )
    data = json.loads(result.stdout or "{}")
    reported = data.get("results", data) if isinstance(data, dict) else data
    assert result.returncode == 0, result.stdout + result.stderr
    return reported if isinstance(reported, list) else []


def shard_of(certificate: x509.Certificate) -> int:
    return certificate.serial_number % SHARDS


def serials(crl: x509.CertificateRevocationList) -> set[int]:
    return {entry.serial_number for entry in crl}


# -- certificates carry status pointers (or deliberately none) ----------------------------


def test_device_certificate_names_its_shard_crl_and_ocsp(status: Status) -> None:
    certificate = status.issue()
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = f"{BASE}/crl/local-dev/{shard_of(certificate)}.crl"
    assert [n.value for p in points for n in p.full_name or []] == [url]
    access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    by_method = {a.access_method: a.access_location.value for a in access}
    assert by_method == {
        AuthorityInformationAccessOID.OCSP: f"{BASE}/ocsp",
        AuthorityInformationAccessOID.CA_ISSUERS: f"{BASE}/ca/local-dev.cer",
    }
    path = pem(status.folder / "device.pem", certificate)
    result = subprocess.run(
        [str(BIN / "lint_pkix_cert"), "lint", "-s", "WARNING", "-f", "JSON", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("profile", ["compact", "short-lived"])
def test_compact_and_short_lived_carry_no_status_pointers(status: Status, profile: str) -> None:
    certificate = status.issue(profile)
    oids = {extension.oid for extension in certificate.extensions}
    assert x509.CRLDistributionPoints.oid not in oids
    assert x509.AuthorityInformationAccess.oid not in oids
    if profile == "compact":
        assert len(certificate.public_bytes(serialization.Encoding.DER)) <= 450
    else:
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert lifetime <= datetime.timedelta(days=7)


def test_local_engine_signs_crls_and_says_so(local_engine: LocalCAEngine) -> None:
    assert local_engine.capabilities().supports_crl_signing
    signer = crl_signer(local_engine)
    assert signer is not None
    now = datetime.datetime.now(datetime.UTC)
    crl = signer.sign_crl(x509.CertificateRevocationListBuilder().last_update(now).next_update(now))
    issuing = local_engine.chain()[0]
    assert crl.issuer == issuing.subject and crl.is_signature_valid(issuing.public_key())


# -- CRLs ---------------------------------------------------------------------------------


def test_revoked_certificate_fails_openssl_with_shard_and_full_crl(status: Status) -> None:
    revoked, kept = status.issue(name="revoked-1"), status.issue(name="kept-1")
    status.revoke(revoked)
    status.publisher.publish_due()
    shard = status.crl_at(f"crl/local-dev/{shard_of(revoked)}.crl")
    full = status.crl_at("crl/local-dev.crl")
    for name, crl in (("shard", shard), ("full", full)):
        path = status.write(f"{name}.crl", crl.public_bytes(serialization.Encoding.PEM))
        result = openssl_verify(status, revoked, path)
        assert result.returncode == 2 and "error 23" in result.stdout + result.stderr, result
        assert "certificate revoked" in result.stdout + result.stderr
    kept_crl = status.write(
        "kept.crl",
        status.crl_at(f"crl/local-dev/{shard_of(kept)}.crl").public_bytes(
            serialization.Encoding.PEM
        ),
    )
    assert openssl_verify(status, kept, kept_crl).returncode == 0
    entry = shard.get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    idp = shard.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and idp.value.only_contains_user_certs
    assert [n.value for n in idp.value.full_name or []] == [
        f"{BASE}/crl/local-dev/{shard_of(revoked)}.crl"
    ]
    with pytest.raises(x509.ExtensionNotFound):
        full.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert status.store.get("ca/local-dev.cer")[0] == status.engine.chain()[0].public_bytes(
        serialization.Encoding.DER
    )


def test_crls_are_pkilint_clean(status: Status) -> None:
    for index, reason in enumerate(["keyCompromise", "unspecified", "superseded"]):
        status.revoke(status.issue(name=f"lint-{index}"), reason)
    status.publisher.publish_due()
    keys = [f"crl/local-dev/{k}.crl" for k in range(SHARDS)] + ["crl/local-dev.crl"]
    for index, key in enumerate(keys):
        path = status.write(f"lint-{index}.crl", status.store.get(key)[0])
        assert findings("lint_crl", "-t", "CRL", "-p", "PKIX", str(path)) == []


def test_shards_hold_only_their_own_entries(status: Status, dynamo_calls) -> None:
    certificates = [status.issue(name=f"fleet-{i}") for i in range(50)]
    for certificate in certificates:
        status.revoke(certificate)
    dynamo_calls.clear()
    published = status.publisher.publish_due()
    assert "Scan" not in dynamo_calls.operations
    by_shard = {p.shard: p for p in published}
    for shard in range(SHARDS):
        expected = {c.serial_number for c in certificates if shard_of(c) == shard}
        assert serials(status.crl_at(f"crl/local-dev/{shard}.crl")) == expected
        assert by_shard[shard].entries == len(expected)
    assert serials(status.crl_at("crl/local-dev.crl")) == {c.serial_number for c in certificates}
    sizes = [by_shard[k].size_bytes for k in range(SHARDS)]
    assert max(sizes) < by_shard[None].size_bytes


def test_crl_numbers_increase_and_revocations_are_debounced(status: Status, events) -> None:
    first = status.publisher.publish_due()
    assert status.publisher.publish_due() == []  # nothing due: nothing regenerated
    certificates = [status.issue(name=f"burst-{i}") for i in range(6)]
    for certificate in certificates:
        status.revoke(certificate)
    second = status.publisher.publish_due()
    dirty = {shard_of(c) for c in certificates}
    assert {p.shard for p in second} == dirty | {None}  # one CRL per dirty shard, plus full
    numbers = [p.number for p in first + second]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for item in second:
        crl = x509.load_der_x509_crl(item.der)
        assert (
            crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == item.number
        )
    published = [d for t, d in events() if t == "CRL Published"]  # the tap validates schemas
    assert {d["crlNumber"] for d in published} == set(numbers)
    assert all(d["sizeBytes"] > 0 and d["url"].startswith(BASE) for d in published)


def test_refresh_before_next_update(status: Status) -> None:
    status.publisher.publish_due()
    status.clock.now += datetime.timedelta(hours=15)  # 24h validity, refresh 8h before
    assert status.publisher.publish_due() == []
    status.clock.now += datetime.timedelta(hours=2)
    assert len(status.publisher.publish_due()) == SHARDS + 1


def test_expired_certificate_appears_once_after_expiry(status: Status) -> None:
    certificate = status.issue(name="expiring")
    status.revoke(certificate)
    status.publisher.publish_due()
    key = f"crl/local-dev/{shard_of(certificate)}.crl"
    assert certificate.serial_number in serials(status.crl_at(key))
    status.clock.now = certificate.not_valid_after_utc + datetime.timedelta(days=1)
    published = status.publisher.publish_due()
    assert certificate.serial_number in serials(status.crl_at(key))
    assert certificate.serial_number in serials(status.crl_at("crl/local-dev.crl"))
    record = CertificateRecord.get(f"default#{certificate.serial_number:032x}")
    shard_number = next(p.number for p in published if p.shard == shard_of(certificate))
    assert record.crl_final_number == shard_number
    status.clock.now += datetime.timedelta(days=1)
    status.publisher.publish_due(force=True)
    assert certificate.serial_number not in serials(status.crl_at(key))
    assert certificate.serial_number not in serials(status.crl_at("crl/local-dev.crl"))


def test_write_shards_read_per_crl_shard() -> None:
    assert gcd_write_shards(3, 8, 8) == [3]
    assert gcd_write_shards(3, 16, 8) == [3]
    assert gcd_write_shards(5, 4, 8) == [1, 5]
    assert gcd_write_shards(2, 3, 8) == list(range(8))


# -- OCSP ---------------------------------------------------------------------------------


def load(response_body: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(response_body)


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()], ids=["sha1", "sha256"])
def test_ocsp_good_revoked_unknown(status: Status, algorithm: hashes.HashAlgorithm) -> None:
    good, revoked = status.issue(name="good"), status.issue(name="bad")
    status.revoke(revoked, "cessationOfOperation")
    answer = load(status.responder.respond(status.ocsp_request(good, algorithm)).body)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert isinstance(answer.hash_algorithm, type(algorithm))
    assert answer.serial_number == good.serial_number
    answer = load(status.responder.respond(status.ocsp_request(revoked, algorithm)).body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.cessation_of_operation
    assert answer.revocation_time_utc is not None
    # A serial this CA never issued: the issuer is ours, the certificate unknown.
    stranger = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(answer.issuer_name_hash, answer.issuer_key_hash, 12345, algorithm)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert load(status.responder.respond(stranger).body).certificate_status == (
        ocsp.OCSPCertStatus.UNKNOWN
    )
    signer = answer.certificates[0]
    issuing = status.engine.chain()[0]
    signer.verify_directly_issued_by(issuing)
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    signer.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert signer.not_valid_after_utc - signer.not_valid_before_utc <= datetime.timedelta(days=31)


def test_ocsp_nonce_cache_control_and_presigned_reuse(status: Status) -> None:
    certificate = status.issue()
    nonce = b"0123456789abcdef"
    answer = status.responder.respond(status.ocsp_request(certificate, nonce=nonce))
    parsed = load(answer.body)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    max_age = int(answer.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= (parsed.next_update_utc - status.clock.now).total_seconds() + 1
    plain = status.ocsp_request(certificate)
    first = status.responder.respond(plain)
    assert status.responder.respond(plain).body == first.body  # pre-signed, reused
    status.clock.now += datetime.timedelta(hours=5)
    later = status.responder.respond(plain)
    assert later.body == first.body  # before half-way (12h validity): still reused
    assert int(later.headers["Cache-Control"].split("max-age=")[1].split(",")[0]) < max_age
    status.clock.now += datetime.timedelta(hours=2)
    assert status.responder.respond(plain).body != first.body  # past half-way: signed again
    status.revoke(certificate)
    assert (
        load(status.responder.respond(plain).body).certificate_status == ocsp.OCSPCertStatus.REVOKED
    )


def test_ocsp_get_accepts_standard_and_url_safe_base64(status: Status) -> None:
    certificate = status.issue()
    der = status.ocsp_request(certificate)
    for encoded in (
        quote(base64.b64encode(der).decode(), safe=""),
        base64.urlsafe_b64encode(der).decode().rstrip("="),
    ):
        answer = status.responder.handle_http("GET", f"/ocsp/{encoded}", b"")
        assert answer.status == 200
        assert load(answer.body).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("garbage", b"this is not DER", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("empty", b"", ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        (
            "oversized",
            b"\x30" + b"\x00" * (MAX_REQUEST_BYTES + 1),
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        ),
    ],
)
def test_ocsp_bad_input(status: Status, name: str, body: bytes, expected) -> None:
    answer = status.responder.handle_http("POST", "/ocsp", body)
    assert answer.status == 200 and load(answer.body).response_status == expected


def test_ocsp_truncated_unknown_issuer_and_bad_get(status: Status, tmp_path: Path) -> None:
    certificate = status.issue()
    der = status.ocsp_request(certificate)
    truncated = status.responder.handle_http("POST", "/ocsp", der[: len(der) // 2])
    assert load(truncated.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    foreign = LocalCAEngine("foreign", tmp_path / "foreign")
    stranger = foreign.chain()[0]
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(stranger, foreign.chain()[1], hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    answer = status.responder.handle_http("POST", "/ocsp", request)
    assert load(answer.body).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    for path in ("/ocsp", "/ocsp/%%%", "/ocsp/not*base64"):
        answer = status.responder.handle_http("GET", path, b"")
        assert answer.status == 200
        assert load(answer.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_responses_are_pkilint_clean(status: Status) -> None:
    good, revoked = status.issue(name="lint-good"), status.issue(name="lint-bad")
    status.revoke(revoked, "keyCompromise")
    for index, certificate in enumerate((good, revoked)):
        body = status.responder.respond(status.ocsp_request(certificate, nonce=b"n" * 16)).body
        path = status.write(f"ocsp-{index}.der", body)
        assert findings("lint_ocsp_response", str(path)) == []


def test_ocsp_signer_key_is_private_and_renewed(status: Status) -> None:
    certificate = status.issue()
    status.responder.respond(status.ocsp_request(certificate))
    key = status.folder / "ocsp" / "local-dev" / "ocsp-signer.key"
    assert key.stat().st_mode & 0o777 == 0o600
    first = x509.load_pem_x509_certificate(key.with_suffix(".pem").read_bytes())
    status.clock.now = first.not_valid_after_utc - datetime.timedelta(days=6)
    answer = load(status.responder.respond(status.ocsp_request(certificate, nonce=b"x" * 16)).body)
    assert answer.certificates[0].serial_number != first.serial_number


def test_short_lived_profile_settings() -> None:
    profile = Settings.load().profiles_by_name["short-lived"]
    assert not profile.crl and not profile.ocsp and profile.max_validity_days <= 7
    compact = Settings.load().profiles_by_name["compact"]
    assert not compact.crl and not compact.ocsp


def test_ml_dsa_ca_signs_crls_and_ocsp(
    aws, make_lifecycle, settings: Settings, monkeypatch, tmp_path
) -> None:
    """A post-quantum CA: its CRLs and its responder's answers are ML-DSA-65 signed."""
    from tests.conftest import csr_pem, new_key

    monkeypatch.setenv(STATUS_URL_ENV, BASE)
    aws.session.client("s3").create_bucket(Bucket=STATUS_BUCKET_DEFAULT)
    engine = LocalCAEngine("local-pqc", tmp_path / "pqc", algorithm="ML-DSA-65")
    lifecycle = make_lifecycle(settings, {"local-pqc": engine})
    record = lifecycle.issue(
        IssueRequest(tenant="default", profile="pqc", csr=csr_pem(new_key("P-256")), requester="t")
    )
    certificate = x509.load_pem_x509_certificate((record.certificate_pem or "").encode())
    lifecycle.revoke("default", record.serial, "superseded", "t")
    store = StatusStore(client=aws.session.client("s3"))
    publisher = CrlPublisher(
        settings,
        lifecycle.inventory,
        lifecycle.router,
        lifecycle.publisher,
        store,
        StatusUrls(BASE),
    )
    published = publisher.publish_due()
    issuing = engine.chain()[0]
    for item in published:
        crl = x509.load_der_x509_crl(item.der)
        assert crl.is_signature_valid(issuing.public_key())
    signers = OcspSigners(settings, lifecycle.router, tmp_path / "ocsp")
    responder = OcspResponder(settings, lifecycle.inventory, lifecycle.router, signers)
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuing, hashes.SHA256())
    answer = load(responder.respond(request.build().public_bytes(serialization.Encoding.DER)).body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    answer.certificates[0].verify_directly_issued_by(issuing)
