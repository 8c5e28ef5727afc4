"""The lifecycle service against moto: issue, renew, revoke, idempotency, failure events.

Certificates are checked by independent tools (openssl verify, pkilint), fingerprints are
recomputed from the DER, and every event read back from the bus is validated by the tap.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from jsonschema import ValidationError

from certbridge import (
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.errors import Conflict, NotFound, RequestRejected, ServiceUnavailable
from certplane.inventory import CertificateRecord, Inventory
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.model import REVOCATION_REASONS, CertificateStatus

# Outside Lambda there is no remaining-time to register; the idempotency utility warns.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
LINT_CHAIN = Path(sys.executable).with_name("lint_pkix_signer_signee_cert_chain")
ISSUED = "Certificate Issued"
RENEWED = "Certificate Renewed"
REVOKED = "Certificate Revoked"
FAILED = "Certificate Issuance Failed"
UNAVAILABLE = "CA Unavailable"

TWO_CA_CONFIG = """
expiry_shards = 4

[[tenants]]
id = "default"
profiles = ["device"]

[[tenants]]
id = "acme"
profiles = ["device"]

[[cas]]
id = "primary"
engine = "local"

[[cas]]
id = "secondary"
engine = "local"

[[profiles]]
name = "device"
max_validity_days = 365
default_validity_days = 90
route = ["primary", "secondary"]
"""


# -- helpers -----------------------------------------------------------------------------


def issue_request(csr: str, **overrides) -> IssueRequest:
    fields = {"tenant": "default", "profile": "device", "csr": csr, "requester": "alice"}
    fields.update(overrides)
    return IssueRequest(**fields)


def certificate_of(record: CertificateRecord) -> x509.Certificate:
    return x509.load_pem_x509_certificate(record.certificate_pem.encode())


def all_items(aws) -> list[dict]:
    """Every item of the inventory table (a test may scan; the product may not)."""
    paginator = aws.dynamodb.get_paginator("scan")
    return [
        item
        for page in paginator.paginate(TableName="certplane-inventory")
        for item in page["Items"]
    ]


def types(events) -> list[str]:
    return [detail_type for detail_type, _ in events]


class FailingEngine:
    """An engine of the route that is down (or refuses); it never signs."""

    def __init__(self, engine_id: str, inner: LocalCAEngine, error: Exception) -> None:
        self._engine_id = engine_id
        self._inner = inner
        self._error = error
        self.calls = 0

    @property
    def engine_id(self) -> str:
        return self._engine_id

    def capabilities(self):
        return self._inner.capabilities()

    def issue(self, request: SigningRequest):
        self.calls += 1
        raise self._error

    def revoke(self, serial_number, reason, revoked_at) -> None:
        self._inner.revoke(serial_number, reason, revoked_at)

    def chain(self):
        return self._inner.chain()


class IntentCheckingEngine(FailingEngine):
    """Signs, but only after checking that the PENDING record is already in the table."""

    def __init__(self, inner: LocalCAEngine, tenant: str) -> None:
        super().__init__(inner.engine_id, inner, RuntimeError("unused"))
        self._tenant = tenant
        self.seen: list[CertificateRecord] = []

    def issue(self, request: SigningRequest):
        self.calls += 1
        record = Inventory(8).get(self._tenant, request.serial_number)
        assert record is not None, "signing before the intent was recorded"
        assert record.status == CertificateStatus.PENDING.value
        assert record.certificate_pem is None
        self.seen.append(record)
        return self._inner.issue(request)


# -- issuance ----------------------------------------------------------------------------


def test_issue_records_every_field(lifecycle, csrs, events, local_engine):
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    record = lifecycle.issue(
        issue_request(
            csrs.pem("P-256", "device-0001"),
            validity_days=5000,
            device_id="gw-0001",
            owner="fleet-team",
            tags={"site": "phl"},
        )
    )
    after = datetime.datetime.now(datetime.UTC)
    certificate = certificate_of(record)
    der = certificate.public_bytes(serialization.Encoding.DER)

    assert record.status == "ISSUED"
    assert record.tenant == "default" and record.pk == f"default#{record.serial}"
    assert int(record.serial, 16) == certificate.serial_number
    assert len(record.serial) == 32 and certificate.serial_number > 0
    assert certificate.serial_number.bit_length() > 64
    assert record.certificate_id == hashlib.sha1(der).hexdigest()
    assert record.sha256_fingerprint == hashlib.sha256(der).hexdigest()
    assert record.not_before == certificate.not_valid_before_utc
    assert record.not_after == certificate.not_valid_after_utc
    # clamped to the device profile's 1095 days, backdated by its 300 s
    assert before + datetime.timedelta(days=1095) <= record.not_after
    assert record.not_after <= after + datetime.timedelta(days=1095)
    assert record.not_after - record.not_before == datetime.timedelta(days=1095, seconds=300)
    assert record.subject == "CN=device-0001" == certificate.subject.rfc4514_string()
    assert record.issuer == local_engine.chain()[0].subject.rfc4514_string()
    assert record.sans == []
    assert record.key_algorithm == "P-256"
    assert record.profile == "device" and record.ca_id == "local-dev"
    assert record.route == ["local-dev"]
    assert record.device_id == "gw-0001" and record.owner == "fleet-team"
    assert record.requester == "alice" and record.tag_dict == {"site": "phl"}
    chain = x509.load_pem_x509_certificates(record.chain_pem.encode())
    assert chain == list(local_engine.chain())
    assert record.expiry_bucket.startswith(f"default#{record.not_after:%Y-%m-%d}#")
    assert record.expiry_key.startswith(record.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert record.status_key.startswith("default#local-dev#ISSUED#")
    assert record.expire_at > record.not_after.timestamp()
    assert record.failure_code is None and record.renewed_from is None

    # what the store holds is what was returned, and it is found by every key
    assert lifecycle.get("default", record.certificate_id).certificate_pem == record.certificate_pem
    assert lifecycle.get("default", record.serial).pk == record.pk

    published = events()
    assert types(published) == [ISSUED]
    detail = published[0][1]
    assert detail["tenant"] == "default" and detail["actor"] == "alice"
    summary = detail["certificate"]
    assert summary["certificateId"] == record.certificate_id
    assert summary["fingerprints"] == {
        "sha256": record.sha256_fingerprint,
        "sha1": record.certificate_id,
    }
    assert summary["serial"] == record.serial and summary["status"] == "ISSUED"
    assert summary["deviceId"] == "gw-0001" and summary["tags"] == {"site": "phl"}
    assert summary["ca"] == "local-dev" and summary["keyAlgorithm"] == "P-256"
    assert summary["notAfter"] == record.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_device_id_defaults_to_the_common_name(lifecycle, csrs):
    record = lifecycle.issue(issue_request(csrs.pem("P-256", "sensor-42")))
    assert record.device_id == "sensor-42"
    assert [r.pk for r in lifecycle.inventory.list("default", device_id="sensor-42").items] == [
        record.pk
    ]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("profile", "kind", "common_name", "sans"),
    [
        ("device", "P-256", "device-0001", ()),
        ("device", "P-384", "device-0002", (x509.DNSName("gw-2.devices"),)),
        ("device", "Ed25519", "device-0003", ()),
        ("device", "RSA-2048", "device-0004", ()),
        (
            "server",
            "P-256",
            "www.example.com",
            (
                x509.DNSName("api.example.com"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ),
        ),
        ("server", "RSA-2048", None, (x509.DNSName("svc.internal"),)),
        ("server", "P-384", "127.0.0.1", ()),
    ],
)
def test_issued_certificates_pass_openssl_and_pkilint(
    lifecycle, csrs, tmp_path, profile, kind, common_name, sans
):
    record = lifecycle.issue(issue_request(csrs.pem(kind, common_name, sans=sans), profile=profile))
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(record.certificate_pem)
    ca_dir = tmp_path / "ca-local-dev"

    verify = _run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver" if profile == "server" else "sslclient",
            "-CAfile",
            str(ca_dir / "root.pem"),
            "-untrusted",
            str(ca_dir / "issuing.pem"),
            str(leaf),
        ]
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().endswith(": OK")

    lint = _run([str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(leaf)])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert json.loads(lint.stdout)["results"] == []

    certificate = certificate_of(record)
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san = list(extension.value)
    except x509.ExtensionNotFound:
        san = []
    expected = list(sans)
    if profile == "server" and common_name:
        try:
            expected.insert(0, x509.IPAddress(ipaddress.ip_address(common_name)))
        except ValueError:
            expected.insert(0, x509.DNSName(common_name))
    assert san == expected


def test_issuer_and_leaf_lint_as_a_pair(lifecycle, csrs, tmp_path):
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(record.certificate_pem)
    issuing = tmp_path / "ca-local-dev" / "issuing.pem"
    lint = _run([str(LINT_CHAIN), "lint", "-s", "WARNING", "-f", "JSON", str(issuing), str(leaf)])
    assert lint.returncode == 0, lint.stdout + lint.stderr


# -- intent before signing, failures ----------------------------------------------------


def test_intent_is_recorded_before_signing(make_lifecycle, settings, local_engine, csrs, events):
    engine = IntentCheckingEngine(local_engine, "default")
    lifecycle = make_lifecycle(settings, {"local-dev": engine})
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    assert engine.calls == 1 and engine.seen[0].pk == record.pk
    renewed = lifecycle.renew(RenewRequest("default", record.serial, "alice"))
    assert engine.calls == 2 and engine.seen[1].pk == renewed.pk
    assert engine.seen[1].renewed_from == record.pk
    assert types(events()) == [ISSUED, RENEWED]


def test_signing_failure_leaves_a_failed_record_and_one_event(
    make_lifecycle, settings, local_engine, csrs, events, aws
):
    engine = FailingEngine("local-dev", local_engine, TransientEngineError("HSM unreachable"))
    lifecycle = make_lifecycle(settings, {"local-dev": engine})
    with pytest.raises(ServiceUnavailable) as caught:
        lifecycle.issue(issue_request(csrs.pem("P-256"), device_id="gw-9"))
    assert caught.value.code == "ca_unavailable"
    assert engine.calls == 1

    items = all_items(aws)
    assert len(items) == 1
    record = lifecycle.inventory.get("default", int(items[0]["serial"]["S"], 16))
    assert record.status == "FAILED"
    assert record.failure_code == "ca_unavailable" and "HSM unreachable" in record.failure_message
    assert record.certificate_pem is None and record.certificate_id is None
    assert record.expiry_bucket is None
    assert record.status_key.startswith("default#local-dev#FAILED#")
    assert (
        list(
            lifecycle.inventory.serials_by_status("default", "local-dev", CertificateStatus.ISSUED)
        )
        == []
    )

    published = events()
    assert types(published) == [UNAVAILABLE, FAILED]
    assert published[0][1]["ca"] == "local-dev" and "HSM unreachable" in published[0][1]["error"]
    published = published[1:]
    detail = published[0][1]
    assert detail["failure"]["code"] == "ca_unavailable"
    assert detail["failure"]["stage"] == "signing"
    assert detail["request"] == {"profile": "device", "operation": "issue", "deviceId": "gw-9"}
    assert detail["certificate"]["serial"] == record.serial
    assert detail["certificate"]["status"] == "FAILED"


def two_ca_settings() -> Settings:
    return Settings.from_toml(TWO_CA_CONFIG)


def test_failover_to_the_next_engine_of_the_route(make_lifecycle, tmp_path, csrs, events):
    secondary = LocalCAEngine("secondary", tmp_path / "ca-secondary")
    primary = FailingEngine("primary", secondary, TransientEngineError("primary is down"))
    lifecycle = make_lifecycle(two_ca_settings(), {"primary": primary, "secondary": secondary})
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    assert primary.calls == 1
    assert record.status == "ISSUED" and record.ca_id == "secondary"
    assert record.route == ["primary", "secondary"]
    assert record.status_key.startswith("default#secondary#ISSUED#")
    certificate_of(record).verify_directly_issued_by(secondary.chain()[0])
    published = events()
    assert types(published) == [UNAVAILABLE, ISSUED]
    assert (published[0][1]["ca"], published[0][1]["engine"]) == ("primary", "local")
    assert published[1][1]["certificate"]["ca"] == "secondary"
    assert list(
        lifecycle.inventory.serials_by_status("default", "secondary", CertificateStatus.ISSUED)
    ) == [record.serial]


def test_every_engine_down_fails_once(make_lifecycle, tmp_path, csrs, events, aws):
    inner = LocalCAEngine("secondary", tmp_path / "ca-secondary")
    primary = FailingEngine("primary", inner, TransientEngineError("down"))
    secondary = FailingEngine("secondary", inner, TransientEngineError("down too"))
    lifecycle = make_lifecycle(two_ca_settings(), {"primary": primary, "secondary": secondary})
    with pytest.raises(ServiceUnavailable):
        lifecycle.issue(issue_request(csrs.pem("P-256")))
    assert (primary.calls, secondary.calls) == (1, 1)
    assert [item["status"]["S"] for item in all_items(aws)] == ["FAILED"]
    # Each engine turned unavailable once; the request failed once.
    assert types(events()) == [UNAVAILABLE, UNAVAILABLE, FAILED]


def test_a_permanent_error_does_not_fail_over(make_lifecycle, tmp_path, csrs, events, aws):
    secondary = LocalCAEngine("secondary", tmp_path / "ca-secondary")
    primary = FailingEngine("primary", secondary, PermanentEngineError("key type refused"))
    lifecycle = make_lifecycle(two_ca_settings(), {"primary": primary, "secondary": secondary})
    with pytest.raises(RequestRejected) as caught:
        lifecycle.issue(issue_request(csrs.pem("P-256")))
    assert caught.value.code == "ca_refused" and caught.value.status == 400
    assert primary.calls == 1
    assert [item["status"]["S"] for item in all_items(aws)] == ["FAILED"]
    published = events()
    assert types(published) == [FAILED]
    assert published[0][1]["failure"]["code"] == "ca_refused"


# -- policy refusals ---------------------------------------------------------------------


def _tampered(csrs) -> str:
    der = csrs.csr("P-256", "device-0001").public_bytes(serialization.Encoding.DER)
    return (
        x509.load_der_x509_csr(der.replace(b"device-0001", b"device-0002"))
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


@pytest.mark.parametrize(
    ("code", "make"),
    [
        ("unsupported_key", lambda c: issue_request(c.pem("RSA-1024"))),
        ("unsupported_key", lambda c: issue_request(c.pem("P-192"))),
        ("invalid_csr_signature", lambda c: issue_request(_tampered(c))),
        ("malformed_csr", lambda c: issue_request("-----BEGIN CERTIFICATE REQUEST-----\nAA==")),
        ("san_not_allowed", lambda c: issue_request(c.pem(sans=[x509.DNSName("evil.com")]))),
        (
            "subject_not_allowed",
            lambda c: issue_request(c.pem(extra_subject=[(NameOID.COUNTRY_NAME, "US")])),
        ),
        ("unknown_profile", lambda c: issue_request(c.pem(), profile="codesign")),
        ("validity_not_allowed", lambda c: issue_request(c.pem(), validity_days=-1)),
    ],
)
def test_policy_refusal_emits_one_event_and_records_nothing(
    lifecycle, csrs, events, aws, code, make
):
    request = make(csrs)
    with pytest.raises(RequestRejected) as caught:
        lifecycle.issue(request)
    assert caught.value.code == code
    assert all_items(aws) == []
    published = events()
    assert types(published) == [FAILED]
    detail = published[0][1]
    assert detail["failure"]["code"] == code and detail["failure"]["stage"] == "policy"
    assert detail["request"]["operation"] == "issue"
    assert detail["request"]["profile"] == request.profile
    assert "certificate" not in detail


# -- renewal -----------------------------------------------------------------------------


def test_renew_with_the_same_key(lifecycle, csrs, events):
    first = lifecycle.issue(
        issue_request(csrs.pem("P-256"), device_id="gw-1", tags={"site": "phl"}, owner="ops")
    )
    renewed = lifecycle.renew(RenewRequest("default", first.certificate_id, "renewal-bot"))

    old_cert, new_cert = certificate_of(first), certificate_of(renewed)
    assert renewed.status == "ISSUED"
    assert renewed.serial != first.serial
    assert new_cert.public_key() == old_cert.public_key()
    assert new_cert.subject == old_cert.subject
    assert renewed.renewed_from == first.pk
    assert renewed.device_id == "gw-1" and renewed.tag_dict == {"site": "phl"}
    assert renewed.owner == "ops" and renewed.requester == "renewal-bot"
    assert renewed.certificate_id != first.certificate_id

    previous = lifecycle.get("default", first.serial)
    assert previous.status == "SUPERSEDED" and previous.superseded_by == renewed.pk
    assert previous.expiry_bucket is None and previous.expiry_key is None
    assert previous.status_key.startswith("default#local-dev#SUPERSEDED#")

    published = events()
    assert types(published) == [ISSUED, RENEWED]
    detail = published[1][1]
    assert detail["sameKey"] is True and detail["actor"] == "renewal-bot"
    assert detail["certificate"]["serial"] == renewed.serial
    assert detail["previousCertificate"]["serial"] == first.serial
    assert detail["previousCertificate"]["status"] == "SUPERSEDED"

    # only the live certificate is due for renewal
    start = min(first.not_after, renewed.not_after) - datetime.timedelta(days=1)
    end = max(first.not_after, renewed.not_after) + datetime.timedelta(days=1)
    assert [r.pk for r in lifecycle.inventory.expiring("default", start, end)] == [renewed.pk]

    # a superseded certificate cannot be renewed again
    with pytest.raises(Conflict) as caught:
        lifecycle.renew(RenewRequest("default", first.serial, "renewal-bot"))
    assert caught.value.code == "invalid_state"
    refused = events()
    assert types(refused) == [FAILED]
    assert refused[0][1]["request"]["operation"] == "renew"
    assert refused[0][1]["request"]["renewing"] == first.serial


def test_renew_with_a_new_csr(lifecycle, csrs, events):
    first = lifecycle.issue(issue_request(csrs.pem("P-256", "device-0009")))
    new_key = csrs.key("P-384", fresh=True)
    renewed = lifecycle.renew(
        RenewRequest(
            "default",
            first.serial,
            "alice",
            csr=csrs.pem(common_name="device-0009", key=new_key),
            validity_days=30,
        )
    )
    assert certificate_of(renewed).public_key() == new_key.public_key()
    assert renewed.key_algorithm == "P-384"
    assert renewed.not_after - renewed.not_before == datetime.timedelta(days=30, seconds=300)
    assert lifecycle.get("default", first.serial).status == "SUPERSEDED"
    published = events()
    assert types(published) == [ISSUED, RENEWED]
    assert published[1][1]["sameKey"] is False


def test_renewal_is_refused_for_a_revoked_certificate(lifecycle, csrs, events, aws):
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    lifecycle.revoke("default", record.serial, "keyCompromise", "secops")
    with pytest.raises(Conflict):
        lifecycle.renew(RenewRequest("default", record.serial, "alice"))
    assert len(all_items(aws)) == 1
    assert types(events()) == [ISSUED, REVOKED, FAILED]


def test_renewal_with_a_refused_csr_leaves_the_old_certificate_live(lifecycle, csrs, events, aws):
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    with pytest.raises(RequestRejected) as caught:
        lifecycle.renew(RenewRequest("default", record.serial, "alice", csr=csrs.pem("RSA-1024")))
    assert caught.value.code == "unsupported_key"
    assert lifecycle.get("default", record.serial).status == "ISSUED"
    assert len(all_items(aws)) == 1
    assert types(events()) == [ISSUED, FAILED]


# -- revocation --------------------------------------------------------------------------


def test_revoke_with_an_rfc5280_reason(lifecycle, csrs, events):
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    revoked = lifecycle.revoke("default", record.certificate_id, "keyCompromise", "secops")
    assert revoked.status == "REVOKED"
    assert revoked.revocation_reason == "keyCompromise"
    assert revoked.revoked_at is not None
    stored = lifecycle.get("default", record.serial)
    assert stored.status == "REVOKED" and stored.revocation_reason == "keyCompromise"
    assert stored.expiry_bucket is None
    inventory = lifecycle.inventory
    assert list(inventory.serials_by_status("default", "local-dev", CertificateStatus.REVOKED)) == [
        record.serial
    ]
    assert list(inventory.serials_by_status("default", "local-dev", CertificateStatus.ISSUED)) == []

    published = events()
    assert types(published) == [ISSUED, REVOKED]
    detail = published[1][1]
    assert detail["revocation"]["reason"] == "keyCompromise"
    assert detail["actor"] == "secops"
    assert detail["certificate"]["status"] == "REVOKED"
    assert detail["certificate"]["serial"] == record.serial

    with pytest.raises(Conflict) as caught:
        lifecycle.revoke("default", record.serial, "superseded", "secops")
    assert caught.value.code == "invalid_state"
    assert lifecycle.get("default", record.serial).revocation_reason == "keyCompromise"
    assert events() == []


@pytest.mark.parametrize("reason", ["stolen", "key_compromise", "removeFromCRL", ""])
def test_unknown_revocation_reasons_are_refused(lifecycle, csrs, reason):
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    with pytest.raises(RequestRejected) as caught:
        lifecycle.revoke("default", record.serial, reason, "secops")
    assert caught.value.code == "invalid_reason"
    assert lifecycle.get("default", record.serial).status == "ISSUED"


def test_every_rfc5280_reason_is_accepted_and_fits_the_schema(lifecycle, csrs, events):
    assert set(REVOCATION_REASONS) == {
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "privilegeWithdrawn",
        "aACompromise",
    }
    for reason in REVOCATION_REASONS:
        record = lifecycle.issue(issue_request(csrs.pem("P-256")))
        assert lifecycle.revoke("default", record.serial, reason, "secops").status == "REVOKED"
    revoked = [d["revocation"]["reason"] for t, d in events() if t == REVOKED]
    assert revoked == list(REVOCATION_REASONS)


def test_a_superseded_certificate_can_still_be_revoked(lifecycle, csrs, events):
    first = lifecycle.issue(issue_request(csrs.pem("P-256")))
    lifecycle.renew(RenewRequest("default", first.serial, "alice"))
    revoked = lifecycle.revoke("default", first.serial, "keyCompromise", "secops")
    assert revoked.status == "REVOKED"
    assert types(events()) == [ISSUED, RENEWED, REVOKED]


def test_other_tenants_cannot_revoke_or_read(make_lifecycle, tmp_path, csrs, events):
    engine = LocalCAEngine("primary", tmp_path / "ca-primary")
    lifecycle = make_lifecycle(two_ca_settings(), {"primary": engine, "secondary": engine})
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    for reference in (record.serial, record.certificate_id):
        with pytest.raises(NotFound):
            lifecycle.get("acme", reference)
        with pytest.raises(NotFound):
            lifecycle.revoke("acme", reference, "keyCompromise", "mallory")
        with pytest.raises(NotFound):
            lifecycle.renew(RenewRequest("acme", reference, "mallory"))
    assert lifecycle.get("default", record.serial).status == "ISSUED"
    assert types(events()) == [ISSUED]


# -- idempotency -------------------------------------------------------------------------


def test_same_idempotency_key_issues_once(lifecycle, csrs, events, aws):
    request = issue_request(csrs.pem("P-256"), idempotency_key="order-1")
    first = lifecycle.issue(request)
    second = lifecycle.issue(request)
    assert second.serial == first.serial
    assert second.certificate_pem == first.certificate_pem
    assert len(all_items(aws)) == 1
    assert len(lifecycle.inventory.list("default").items) == 1
    assert types(events()) == [ISSUED]


def test_idempotency_key_reused_for_another_request(lifecycle, csrs, events, aws):
    lifecycle.issue(issue_request(csrs.pem("P-256"), idempotency_key="order-2"))
    other = csrs.pem("P-384", "device-0002")
    with pytest.raises(Conflict) as caught:
        lifecycle.issue(issue_request(other, idempotency_key="order-2"))
    assert caught.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict) as caught:
        lifecycle.issue(
            issue_request(csrs.pem("P-256"), idempotency_key="order-2", validity_days=9)
        )
    assert caught.value.code == "idempotency_key_reused"
    assert len(all_items(aws)) == 1
    assert types(events()) == [ISSUED]


def test_idempotency_keys_belong_to_one_tenant(make_lifecycle, tmp_path, csrs, events, aws):
    engine = LocalCAEngine("primary", tmp_path / "ca-primary")
    lifecycle = make_lifecycle(two_ca_settings(), {"primary": engine, "secondary": engine})
    csr = csrs.pem("P-256")
    mine = lifecycle.issue(issue_request(csr, idempotency_key="k"))
    theirs = lifecycle.issue(issue_request(csr, tenant="acme", idempotency_key="k"))
    assert mine.tenant == "default" and theirs.tenant == "acme"
    assert mine.serial != theirs.serial
    assert len(all_items(aws)) == 2
    assert [d["tenant"] for _, d in events()] == ["default", "acme"]


def test_idempotent_renewal(lifecycle, csrs, events, aws):
    first = lifecycle.issue(issue_request(csrs.pem("P-256")))
    request = RenewRequest("default", first.serial, "bot", idempotency_key="renew-1")
    renewed = lifecycle.renew(request)
    assert lifecycle.renew(request).serial == renewed.serial
    assert len(all_items(aws)) == 2
    assert types(events()) == [ISSUED, RENEWED]


def test_failed_request_with_a_key_can_be_retried(make_lifecycle, settings, local_engine, csrs):
    """A failure is not remembered as the answer: the retry runs again (and may succeed)."""
    failing = FailingEngine("local-dev", local_engine, TransientEngineError("down"))
    engines = {"local-dev": failing}
    lifecycle = make_lifecycle(settings, engines)
    request = issue_request(csrs.pem("P-256"), idempotency_key="retry-1")
    with pytest.raises(ServiceUnavailable):
        lifecycle.issue(request)
    engines_up = make_lifecycle(settings, {"local-dev": local_engine})
    record = engines_up.issue(request)
    assert record.status == "ISSUED"


class RevokingDuringSigning(FailingEngine):
    """Signs, but someone revokes the certificate being renewed while the CA is signing."""

    def __init__(self, inner: LocalCAEngine, lifecycle_ref: list) -> None:
        super().__init__(inner.engine_id, inner, RuntimeError("unused"))
        self._lifecycle_ref = lifecycle_ref
        self.revoke_serial: str | None = None

    def issue(self, request: SigningRequest):
        self.calls += 1
        if self.revoke_serial:
            self._lifecycle_ref[0].revoke("default", self.revoke_serial, "keyCompromise", "x")
        return self._inner.issue(request)


def test_a_renewal_racing_a_revocation_fails_cleanly(
    make_lifecycle, settings, local_engine, csrs, events
):
    holder: list = []
    engine = RevokingDuringSigning(local_engine, holder)
    lifecycle = make_lifecycle(settings, {"local-dev": engine})
    holder.append(lifecycle)
    first = lifecycle.issue(issue_request(csrs.pem("P-256")))
    engine.revoke_serial = first.serial
    with pytest.raises(Conflict) as caught:
        lifecycle.renew(RenewRequest("default", first.serial, "alice"))
    assert caught.value.code == "invalid_state"

    previous = lifecycle.get("default", first.serial)
    assert previous.status == "REVOKED" and previous.superseded_by is None
    failed = [
        lifecycle.inventory.get("default", int(serial, 16))
        for serial in lifecycle.inventory.serials_by_status(
            "default", "local-dev", CertificateStatus.FAILED
        )
    ]
    assert len(failed) == 1 and failed[0].renewed_from == first.pk
    assert failed[0].failure_code == "invalid_state"
    # a FAILED record is not live: it is not due for renewal and not counted as issued
    assert failed[0].expiry_bucket is None and failed[0].expiry_key is None
    window = (
        first.not_after - datetime.timedelta(days=2),
        first.not_after + datetime.timedelta(days=2),
    )
    assert list(lifecycle.inventory.expiring("default", *window)) == []
    published = events()
    assert types(published) == [ISSUED, REVOKED, FAILED]
    assert published[2][1]["failure"]["stage"] == "recording"


def test_the_event_checks_are_not_vacuous(lifecycle, csrs, events):
    lifecycle.issue(issue_request(csrs.pem("P-256")))
    assert types(events()) == [ISSUED]
    envelope = events.envelopes[0]
    events.check(envelope)
    for broken in (
        {**envelope, "source": "someone-else"},
        {**envelope, "detail": {**envelope["detail"], "privateKey": "x"}},
        {**envelope, "detail": {**envelope["detail"], "tenant": ""}},
        {**envelope, "detail": {k: v for k, v in envelope["detail"].items() if k != "certificate"}},
        {
            **envelope,
            "detail": {
                **envelope["detail"],
                "certificate": {**envelope["detail"]["certificate"], "pem": "-----BEGIN"},
            },
        },
    ):
        with pytest.raises((AssertionError, ValidationError)):
            events.check(broken)


class RevokesByCertificate:
    """A local CA whose back end, like the xPKI API or ACME, revokes by certificate."""

    def __init__(self, inner: LocalCAEngine) -> None:
        self.inner = inner
        self.engine_id = inner.engine_id
        self.revoked: list[tuple[x509.Certificate, x509.ReasonFlags]] = []

    def capabilities(self):
        return self.inner.capabilities()

    def issue(self, request):
        return self.inner.issue(request)

    def chain(self):
        return self.inner.chain()

    def revoke(self, *args):  # pragma: no cover - must not be used
        raise AssertionError("revoke by serial was called")

    def revoke_certificate(self, certificate, reason, revoked_at):
        self.revoked.append((certificate, reason))


def test_revocation_reaches_engines_that_revoke_by_certificate(
    make_lifecycle, settings, local_engine, csrs
):
    engine = RevokesByCertificate(local_engine)
    lifecycle = make_lifecycle(settings, {"local-dev": engine})
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    lifecycle.revoke("default", record.serial, "keyCompromise", "alice")
    ((certificate, reason),) = engine.revoked
    assert certificate == certificate_of(record)
    assert reason is x509.ReasonFlags.key_compromise


def test_a_ca_refusing_a_revocation_is_a_conflict_and_changes_nothing(
    make_lifecycle, settings, local_engine, csrs, events
):
    class RefusesRevocation(RevokesByCertificate):
        def revoke_certificate(self, certificate, reason, revoked_at):
            raise PermanentEngineError("short-lived CA: revocation by expiry")

    lifecycle = make_lifecycle(settings, {"local-dev": RefusesRevocation(local_engine)})
    record = lifecycle.issue(issue_request(csrs.pem("P-256")))
    events()
    with pytest.raises(Conflict) as caught:
        lifecycle.revoke("default", record.serial, "keyCompromise", "alice")
    assert caught.value.code == "ca_refused" and caught.value.status == 409
    assert lifecycle.get("default", record.serial).status == "ISSUED"
    assert events() == []
