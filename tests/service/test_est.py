"""EST (RFC 7030) as API Gateway invokes it: every operation, its media types and headers,
re-enrollment linkage, server-side key generation, and every refusal a clean 4xx that writes
nothing. Events are built by the dev front's `proxy_event`, exactly as `certplane dev` sends them.
"""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyasn1.codec.der.decoder import decode as der_decode
from pyasn1_alt_modules import rfc7030

from certbridge.engines.local import LocalCAEngine
from certplane.auth import CredentialStore
from certplane.config import Settings
from certplane.dev.front import proxy_event
from certplane.dev.lambda_host import DevLambdaContext
from certplane.enroll.est import EstDoor, keygen
from certplane.enroll.est.csrattrs import attribute, csr_attrs_der, oid
from certplane.inventory import CertificateRecord
from certplane.model import certificate_id
from certplane.resources import CA_DIR_ENV, TABLES
from certplane.runtime import Runtime
from tests.conftest import AwsStack, CsrFactory, EventTap, LifecycleFactory, build_csr, new_key

TENANT = "default"
USER, PASSWORD = "est-device-maker", "correct horse battery staple"
CHALLENGE = 'Basic realm="certplane EST"'
EST = "/.well-known/est"
UTC = datetime.UTC


# -- a bootstrap CA and seeds, as a factory would have them -------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Factory:
    """A bootstrap CA that signs device seed certificates."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "Test Bootstrap CA") -> Factory:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def seed(
        self,
        common_name: str = "seed-0001",
        expired: bool = False,
        signer: ec.EllipticCurvePrivateKey | None = None,
    ) -> x509.Certificate:
        """A seed naming this CA as issuer; `signer` forges it with another key."""
        now = datetime.datetime.now(UTC)
        end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=365)
        key = ec.generate_private_key(ec.SECP256R1())
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(signer or self.key, hashes.SHA256())
        )


# -- the door and a client that speaks to it through proxy events -------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def der(self) -> bytes:
        return base64.b64decode("".join(self.body.split()), validate=True)

    def certificates(self) -> list[x509.Certificate]:
        return pkcs7.load_der_pkcs7_certificates(self.der())


def b64(der: bytes) -> bytes:
    """base64 with 64-character lines, as `openssl base64` writes it."""
    encoded = base64.b64encode(der)
    return b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64)) + b"\n"


class EstClient:
    def __init__(self, door: EstDoor) -> None:
        self.door = door

    def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        auth: tuple[str, str] | None = None,
        cert: x509.Certificate | None = None,
        content_type: str | None = "application/pkcs10",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if content_type and method == "POST":
            all_headers["Content-Type"] = content_type
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        der = cert.public_bytes(serialization.Encoding.DER) if cert else None
        event = proxy_event(method, f"{EST}/{path}", all_headers, body, "127.0.0.1", der)
        response = self.door.handle(event, DevLambdaContext(function_name="est"))
        assert response["statusCode"] < 500, response
        assert response["isBase64Encoded"] is False
        reply = Reply(response["statusCode"], response["headers"], response["body"])
        if reply.status >= 400:
            assert reply.content_type.startswith("text/plain"), reply
            assert reply.body.strip() and "Traceback" not in reply.body
        if reply.status == 401:
            assert reply.headers["WWW-Authenticate"] == CHALLENGE
        return reply

    def post(self, body: bytes, path: str = "simpleenroll", **kwargs: Any) -> Reply:
        """POST `body` as is, with the EST user's credentials unless told otherwise."""
        kwargs.setdefault("auth", (USER, PASSWORD))
        return self.call("POST", path, body, **kwargs)

    def enroll(self, csr_der: bytes, path: str = "simpleenroll", **kwargs: Any) -> Reply:
        return self.post(b64(csr_der), path, **kwargs)


@dataclass
class Est:
    client: EstClient
    runtime: Runtime
    factory: Factory
    engine: LocalCAEngine


EstFactory = Callable[[Settings], Est]


@pytest.fixture
def make_est(make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine) -> EstFactory:
    def build(settings: Settings) -> Est:
        runtime = Runtime(
            settings=settings,
            lifecycle=make_lifecycle(settings, {"local-dev": local_engine}),
            credentials=CredentialStore(),
        )
        runtime.credentials.set_password(TENANT, USER, PASSWORD)
        factory = Factory.create()
        runtime.credentials.trust_bootstrap_ca(TENANT, factory.certificate)
        return Est(EstClient(EstDoor(runtime)), runtime, factory, local_engine)

    return build


@pytest.fixture
def est(make_est: EstFactory) -> Est:
    return make_est(Settings.load())


def settings_with(change: Callable[[dict[str, Any]], None]) -> Settings:
    data = Settings.load().model_dump()
    change(data)
    return Settings.model_validate(data)


def profile_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in data["profiles"] if p["name"] == name)


def records() -> list[CertificateRecord]:
    return list(CertificateRecord.by_tenant.query(TENANT))


def csr(key: Any, common_name: str = "device-0001", **kwargs: Any) -> bytes:
    return build_csr(key, common_name, **kwargs).public_bytes(serialization.Encoding.DER)


def public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- cacerts ------------------------------------------------------------------------------


def test_cacerts_is_the_ca_chain_as_base64_certs_only(est: Est) -> None:
    reply = est.client.call("GET", "cacerts")
    assert reply.status == 200
    assert reply.content_type == "application/pkcs7-mime"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"
    assert all(len(line) <= 76 for line in reply.body.splitlines())
    assert set(reply.certificates()) == set(est.engine.chain())

    labelled = est.client.call("GET", "server/cacerts", auth=(USER, PASSWORD))
    assert labelled.status == 200 and labelled.certificates() == reply.certificates()
    seeded = est.client.call("GET", "cacerts", cert=est.factory.seed())
    assert seeded.status == 200 and seeded.certificates() == reply.certificates()
    assert est.client.call("GET", "no-such-profile/cacerts").status == 404
    assert est.client.call("GET", "cacerts", auth=(USER, "wrong")).status == 401


def test_anonymous_requests_need_a_label_when_there_are_several_tenants(
    make_est: EstFactory,
) -> None:
    settings = settings_with(
        lambda d: d["tenants"].append(
            {"id": "acme", "name": "", "profiles": ["device"], "default_profile": "device"}
        )
    )
    est = make_est(settings)
    est.runtime.credentials.set_password("acme", "acme-user", PASSWORD)
    assert est.client.call("GET", "cacerts").status == 401
    assert est.client.call("GET", "device/cacerts").status == 200
    assert est.client.call("GET", "cacerts", auth=("acme-user", PASSWORD)).status == 200
    # A tenant only reaches its own profiles, whatever the label says.
    assert est.client.call("GET", "server/cacerts", auth=("acme-user", PASSWORD)).status == 404
    reply = est.client.enroll(
        csr(new_key("P-256")), "server/simpleenroll", auth=("acme-user", PASSWORD)
    )
    assert reply.status == 404 and records() == []


# -- simpleenroll -------------------------------------------------------------------------


def test_simpleenroll_with_basic_credentials(est: Est, csrs: CsrFactory, events: EventTap) -> None:
    key = csrs.key("P-256", fresh=True)
    reply = est.client.enroll(csr(key, "meter-0042"))
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/pkcs7-mime; smime-type=certs-only"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"
    assert "\r" not in reply.body  # LF lines: `base64 -d` in the dev example refuses CR
    [certificate] = reply.certificates()  # the issued certificate only (RFC 7030 §4.2.3)
    assert certificate.subject == _name("meter-0042")
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    certificate.verify_directly_issued_by(est.engine.chain()[0])

    [record] = records()
    assert record.status == "ISSUED" and record.profile == "device"  # the tenant default
    assert record.certificate_id == certificate_id(certificate)
    assert record.requester == f"est-user:{USER}"
    assert [kind for kind, _ in events()] == ["Certificate Issued"]


@pytest.mark.parametrize(("label", "profile"), [("compact", "compact"), ("device-lite", "compact")])
def test_simpleenroll_label_selects_profile_by_name_or_alias(
    est: Est, csrs: CsrFactory, label: str, profile: str
) -> None:
    reply = est.client.enroll(csr(csrs.key("P-256"), "node-1"), f"{label}/simpleenroll")
    assert reply.status == 200, reply.body
    assert [r.profile for r in records()] == [profile]
    assert len(reply.certificates()[0].public_bytes(serialization.Encoding.DER)) <= 450


def test_simpleenroll_with_a_seed_certificate_from_the_bootstrap_ca(
    est: Est, csrs: CsrFactory
) -> None:
    seed = est.factory.seed()
    reply = est.client.enroll(csr(csrs.key("P-384"), "sensor-9"), auth=None, cert=seed)
    assert reply.status == 200, reply.body
    [record] = records()
    assert record.requester == f"est-seed:{certificate_id(seed)}"
    assert record.key_algorithm == "P-384"


# -- simplereenroll -----------------------------------------------------------------------


def _enrolled(est: Est, common_name: str = "meter-0042") -> tuple[x509.Certificate, Any]:
    key = new_key("P-256")
    reply = est.client.enroll(csr(key, common_name))
    assert reply.status == 200, reply.body
    return reply.certificates()[0], key


def test_simplereenroll_renews_the_client_certificate(est: Est, events: EventTap) -> None:
    old, _ = _enrolled(est)
    events()
    new_key_ = new_key("P-256")
    reply = est.client.enroll(csr(new_key_, "meter-0042"), "simplereenroll", auth=None, cert=old)
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/pkcs7-mime; smime-type=certs-only"
    [renewed] = reply.certificates()
    assert renewed.subject == old.subject
    assert public_der(renewed.public_key()) == public_der(new_key_.public_key())

    by_id = {r.certificate_id: r for r in records()}
    previous, current = by_id[certificate_id(old)], by_id[certificate_id(renewed)]
    assert previous.status == "SUPERSEDED" and previous.superseded_by == current.pk
    assert current.status == "ISSUED" and current.renewed_from == previous.pk
    assert current.requester == f"est-certificate:{certificate_id(old)}"
    [(kind, detail)] = events()
    assert kind == "Certificate Renewed" and detail["sameKey"] is False

    # The superseded certificate cannot re-enroll again; the renewed one can, with its label.
    again = csr(new_key("P-256"), "meter-0042")
    assert est.client.enroll(again, "simplereenroll", auth=None, cert=old).status == 401
    labelled = est.client.enroll(again, "device/simplereenroll", auth=None, cert=renewed)
    assert labelled.status == 200


def test_simplereenroll_refusals_write_nothing(est: Est) -> None:
    old, _ = _enrolled(est)
    key = new_key("P-256")
    cases = {
        "no client certificate": est.client.enroll(csr(key, "meter-0042"), "simplereenroll"),
        "a seed is not ours": est.client.enroll(
            csr(key, "meter-0042"), "simplereenroll", auth=None, cert=est.factory.seed()
        ),
        "subject change": est.client.enroll(
            csr(key, "meter-9999"), "simplereenroll", auth=None, cert=old
        ),
        "SAN added": est.client.enroll(
            csr(key, "meter-0042", sans=[x509.DNSName("m.devices")]),
            "simplereenroll",
            auth=None,
            cert=old,
        ),
        "other profile's label": est.client.enroll(
            csr(key, "meter-0042"), "compact/simplereenroll", auth=None, cert=old
        ),
        "someone else's password": est.client.enroll(
            csr(key, "meter-0042"), "simplereenroll", auth=(USER, "wrong"), cert=old
        ),
    }
    assert {name: reply.status for name, reply in cases.items()} == {
        "no client certificate": 401,
        "a seed is not ours": 401,
        "subject change": 400,
        "SAN added": 400,
        "other profile's label": 400,
        "someone else's password": 401,
    }
    assert "subject_mismatch" in cases["subject change"].body
    [record] = records()
    assert record.status == "ISSUED"


def test_simplereenroll_may_leave_out_the_san_the_profile_derives_from_the_cn(est: Est) -> None:
    # The server profile copies the CN into a dNSName, so the old certificate has a SAN the
    # device never asked for; leaving it out of the new CSR keeps the same names.
    reply = est.client.enroll(csr(new_key("P-256"), "api.example"), "server/simpleenroll")
    assert reply.status == 200, reply.body
    [old] = reply.certificates()
    same = est.client.enroll(csr(new_key("P-256"), "api.example"), "simplereenroll", cert=old)
    assert same.status == 200, same.body
    [renewed] = same.certificates()
    names = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["api.example"]
    other = csr(new_key("P-256"), "api.example", sans=[x509.DNSName("other.example")])
    refused = est.client.enroll(other, "simplereenroll", cert=renewed)
    assert refused.status == 400 and "san_mismatch" in refused.body


def test_simplereenroll_trusts_the_stored_certificate_not_just_its_sha1(est: Est) -> None:
    # Stand-in for a SHA-1 collision: the record found by id holds a different certificate.
    old, _ = _enrolled(est, "meter-0001")
    other, _ = _enrolled(est, "meter-0002")
    record = next(r for r in records() if r.certificate_id == certificate_id(old))
    record.update(
        actions=[
            CertificateRecord.certificate_pem.set(
                other.public_bytes(serialization.Encoding.PEM).decode()
            )
        ]
    )
    reply = est.client.enroll(csr(new_key("P-256"), "meter-0001"), "simplereenroll", cert=old)
    assert reply.status == 401 and "not issued by this service" in reply.body


def test_simplereenroll_with_a_revoked_certificate_is_refused(est: Est) -> None:
    old, _ = _enrolled(est)
    est.runtime.lifecycle.revoke(TENANT, certificate_id(old), "keyCompromise", "tests")
    reply = est.client.enroll(csr(new_key("P-256"), "meter-0042"), "simplereenroll", cert=old)
    assert reply.status == 401 and "REVOKED" in reply.body
    assert [r.status for r in records()] == ["REVOKED"]


# -- csrattrs -----------------------------------------------------------------------------


def _csr_attributes(reply: Reply) -> tuple[list[str], dict[str, list[Any]]]:
    """(bare OIDs, attribute type → decoded values), decoded by pyasn1's RFC 7030 module."""
    attrs, rest = der_decode(reply.der(), asn1Spec=rfc7030.CsrAttrs())
    assert rest == b""
    oids: list[str] = []
    attributes: dict[str, list[Any]] = {}
    for element in attrs:
        if element.getName() == "oid":
            oids.append(str(element["oid"]))
        else:
            attribute = element["attribute"]
            values = [der_decode(bytes(v))[0] for v in attribute["attrValues"]]
            attributes.setdefault(str(attribute["attrType"]), []).extend(values)
    return oids, attributes


def test_csrattrs_describe_the_profile(est: Est) -> None:
    reply = est.client.call("GET", "csrattrs")
    assert reply.status == 200
    assert reply.content_type == "application/csrattrs"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"
    oids, attributes = _csr_attributes(reply)
    assert sorted(str(v) for v in attributes["1.2.840.10045.2.1"]) == [
        "1.2.840.10045.3.1.7",  # P-256
        "1.3.132.0.34",  # P-384
    ]
    assert [int(v) for v in attributes["1.2.840.113549.1.1.1"]] == [2048]
    assert oids == [
        "1.2.840.10045.4.3.2",  # ecdsa-with-SHA256
        "1.2.840.10045.4.3.3",  # ecdsa-with-SHA384
        "1.3.101.112",  # Ed25519
        "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
    ]
    assert "1.2.840.113549.1.9.7" not in oids  # no challengePassword: §3.5 linking is not done

    compact_oids, compact = _csr_attributes(est.client.call("GET", "compact/csrattrs"))
    assert compact_oids == ["1.2.840.10045.4.3.2"]
    assert {k: [str(v) for v in vs] for k, vs in compact.items()} == {
        "1.2.840.10045.2.1": ["1.2.840.10045.3.1.7"]
    }
    _, server = _csr_attributes(est.client.call("GET", "server/csrattrs"))
    assert [str(v) for v in server["1.2.840.113549.1.9.14"]] == ["2.5.29.17"]


def test_csrattrs_encoding_reproduces_the_rfc_8951_example() -> None:
    """RFC 8951 §4's worked example, byte for byte, from the same encoder the door uses."""
    elements = [
        oid("1.2.840.113549.1.9.7"),  # challengePassword
        attribute("1.2.840.10045.2.1", oid("1.3.132.0.34")),  # ecPublicKey: secp384r1
        attribute("1.2.840.113549.1.9.14", oid("1.3.6.1.1.1.1.22")),  # extReq: macAddress
        oid("1.2.840.10045.4.3.3"),  # ecdsaWithSHA384
    ]
    expected = (
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ"
        "BgcrBgEBAQEWBggqhkjOPQQDAw=="
    )
    assert base64.b64encode(csr_attrs_der(elements)).decode() == expected


def test_csrattrs_answers_204_when_the_profile_asks_for_nothing(make_est: EstFactory) -> None:
    est = make_est(settings_with(lambda d: profile_of(d, "device").update(key_algorithms=[])))
    reply = est.client.call("GET", "csrattrs", auth=(USER, PASSWORD))
    assert (reply.status, reply.body) == (204, "")


# -- serverkeygen -------------------------------------------------------------------------


def _multipart(reply: Reply) -> dict[str, bytes]:
    """The parts of a multipart/mixed reply, parsed by Python's email package."""
    message = email.message_from_bytes(
        f"Content-Type: {reply.content_type}\r\n\r\n".encode() + reply.body.encode(),
        policy=email.policy.HTTP,
    )
    assert message.is_multipart()
    parts = {}
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "base64"
        parts[part.get_content_type()] = part.get_payload(decode=True)
    return parts


def _stored_text(aws: AwsStack) -> str:
    items = [aws.dynamodb.scan(TableName=spec.default_name)["Items"] for spec in TABLES]
    return json.dumps(items)


@pytest.mark.parametrize("kind", ["P-256", "P-384", "Ed25519"])
def test_serverkeygen_returns_a_key_matching_the_certificate(
    est: Est, events: EventTap, aws: AwsStack, kind: str
) -> None:
    hint_key = new_key(kind)
    reply = est.client.enroll(csr(hint_key, "keyless-7"), "serverkeygen")
    assert reply.status == 200, reply.body
    assert reply.content_type.startswith("multipart/mixed; boundary=")
    parts = _multipart(reply)
    assert list(parts) == ["application/pkcs8", "application/pkcs7-mime"]
    key = serialization.load_der_private_key(parts["application/pkcs8"], password=None)
    [certificate] = pkcs7.load_der_pkcs7_certificates(parts["application/pkcs7-mime"])
    assert public_der(certificate.public_key()) == public_der(key.public_key())
    assert public_der(key.public_key()) != public_der(hint_key.public_key())
    assert type(key.public_key()) is type(hint_key.public_key())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert key.curve.name == hint_key.curve.name
    assert certificate.subject == _name("keyless-7")

    # The key is nowhere but in this one reply: not in an event, not in any table.
    forms = [
        base64.b64encode(parts["application/pkcs8"]).decode(),
        parts["application/pkcs8"].hex(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
        .splitlines()[1],
    ]
    published = events()
    assert [kind for kind, _ in published] == ["Certificate Issued"]
    everything = json.dumps(events.envelopes) + _stored_text(aws)
    assert "PRIVATE KEY" not in everything
    for form in forms:
        assert form not in everything
    [record] = records()
    assert record.certificate_id == certificate_id(certificate)


def test_serverkeygen_ignores_the_csr_signature_but_not_the_profile(est: Est) -> None:
    # RFC 7030 §4.4.1: the CSR's key and signature are ignored; only what it asks for counts.
    bad_signature = bytearray(csr(new_key("P-256"), "keyless-8"))
    bad_signature[-2] ^= 0x01
    assert est.client.enroll(bytes(bad_signature), "serverkeygen").status == 200
    assert len(records()) == 1
    for kind in ("P-192", "RSA-1024"):
        refused = est.client.enroll(csr(new_key(kind), "keyless-9"), "serverkeygen")
        assert refused.status == 400 and "unsupported_key" in refused.body
    assert est.client.enroll(csr(new_key("P-384"), "k"), "compact/serverkeygen").status == 400
    assert len(records()) == 1


def test_serverkeygen_caps_the_rsa_size_it_generates(
    est: Est, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keygen, "MAX_GENERATED_RSA_BITS", 2047)
    reply = est.client.enroll(csr(new_key("RSA-2048"), "big-rsa"), "serverkeygen")
    assert reply.status == 400 and "at most 2047 bits" in reply.body
    assert records() == []


def test_serverkeygen_with_a_seed_and_rsa(est: Est) -> None:
    hint = new_key("RSA-2048")
    reply = est.client.enroll(
        csr(hint, "rsa-node"), "serverkeygen", auth=None, cert=est.factory.seed()
    )
    assert reply.status == 200, reply.body
    key = serialization.load_der_private_key(_multipart(reply)["application/pkcs8"], None)
    assert key.key_size == 2048


# -- authentication -----------------------------------------------------------------------


def test_missing_or_bad_credentials_are_401_with_a_basic_challenge(
    est: Est, csrs: CsrFactory, events: EventTap
) -> None:
    body = csr(csrs.key("P-256"), "intruder")
    foreign = Factory.create("Somebody else's CA")
    ca_itself = est.factory.certificate
    cases = {
        "no credentials": {"auth": None},
        "wrong password": {"auth": (USER, "wrong")},
        "unknown user": {"auth": ("nobody", PASSWORD)},
        "bearer scheme": {"auth": None, "headers": {"Authorization": "Bearer abc"}},
        "broken Basic": {"auth": None, "headers": {"Authorization": "Basic %%%"}},
        "no colon": {
            "auth": None,
            "headers": {"Authorization": "Basic " + base64.b64encode(b"user").decode()},
        },
        "foreign seed": {"auth": None, "cert": foreign.seed()},
        "forged seed": {"auth": None, "cert": est.factory.seed(signer=foreign.key)},
        "expired seed": {"auth": None, "cert": est.factory.seed(expired=True)},
        "CA as seed": {"auth": None, "cert": ca_itself},
        "wrong password beats a good seed": {
            "auth": (USER, "wrong"),
            "cert": est.factory.seed(),
        },
    }
    for operation in ("simpleenroll", "serverkeygen"):
        for case, kwargs in cases.items():
            reply = est.client.enroll(body, operation, **kwargs)
            assert reply.status == 401, (operation, case, reply)
    assert records() == []
    assert events() == []


# -- approval -----------------------------------------------------------------------------


def test_a_profile_requiring_approval_answers_202_and_records_nothing(
    make_est: EstFactory, events: EventTap
) -> None:
    est = make_est(settings_with(lambda d: profile_of(d, "device").update(requires_approval=True)))
    for operation in ("simpleenroll", "serverkeygen"):
        reply = est.client.enroll(csr(new_key("P-256"), "waiting-1"), operation)
        assert reply.status == 202, reply.body
        assert int(reply.headers["Retry-After"]) > 0
        assert "no approval workflow" in reply.body
    broken = bytearray(csr(new_key("P-256"), "waiting-2"))
    broken[-2] ^= 0x01
    assert est.client.enroll(bytes(broken)).status == 400  # never "accepted" when unusable
    assert est.client.enroll(csr(new_key("P-256"), "c"), "compact/simpleenroll").status == 200
    assert [r.profile for r in records()] == ["compact"]
    assert [kind for kind, _ in events()] == ["Certificate Issued"]


# -- bad input ----------------------------------------------------------------------------


def _bad_signature() -> bytes:
    der = bytearray(csr(new_key("P-256")))
    der[-2] ^= 0x01
    return bytes(der)


def _ed25519_wrong_profile() -> bytes:
    return csr(ed25519.Ed25519PrivateKey.generate(), "node-e")


def _p256(common_name: str = "device-0001") -> bytes:
    return csr(new_key("P-256"), common_name)


BAD_REQUESTS: list[tuple[str, Callable[[EstClient], Reply], int, str]] = [
    ("broken base64", lambda c: c.post(b"MIIB$$$not*base64"), 400, "malformed_base64"),
    ("truncated base64", lambda c: c.post(b64(_p256())[:-6]), 400, "malformed_base64"),
    ("binary DER body", lambda c: c.post(_p256()), 400, "malformed_base64"),
    ("empty body", lambda c: c.post(b""), 400, "empty_body"),
    ("base64 of garbage", lambda c: c.enroll(b"\x30\x03\x02\x01\x00"), 400, "malformed_csr"),
    ("bad CSR signature", lambda c: c.enroll(_bad_signature()), 400, "invalid_csr_signature"),
    ("wrong curve", lambda c: c.enroll(csr(new_key("P-192"))), 400, "unsupported_key"),
    ("weak RSA", lambda c: c.enroll(csr(new_key("RSA-1024"))), 400, "unsupported_key"),
    (
        "key the profile refuses",
        lambda c: c.enroll(_ed25519_wrong_profile(), "compact/simpleenroll"),
        400,
        "unsupported_key",
    ),
    ("refused subject", lambda c: c.enroll(_p256("bad name!")), 400, "subject_not_allowed"),
    ("oversized body", lambda c: c.post(b"A" * (64 * 1024 + 1)), 413, "payload_too_large"),
    ("oversized binary", lambda c: c.post(b"\xff" * (64 * 1024 + 1)), 413, "payload_too_large"),
    (
        "wrong media type",
        lambda c: c.enroll(_p256(), content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    ),
    (
        "no media type",
        lambda c: c.enroll(_p256(), content_type=None),
        415,
        "unsupported_media_type",
    ),
    ("unknown operation", lambda c: c.call("GET", "fullcmc"), 404, "not_found"),
    ("too deep a path", lambda c: c.call("GET", "a/b/cacerts"), 404, "not_found"),
    ("unknown label", lambda c: c.enroll(_p256(), "nope/simpleenroll"), 404, "unknown_label"),
    ("GET on simpleenroll", lambda c: c.call("GET", "simpleenroll"), 405, "method_not_allowed"),
    ("POST on cacerts", lambda c: c.post(b"x", "cacerts"), 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("case", "request_", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_input_is_a_clean_4xx_that_writes_nothing(
    est: Est,
    case: str,
    request_: Callable[[EstClient], Reply],
    status: int,
    code: str,
) -> None:
    reply = request_(est.client)
    assert (reply.status, reply.body.split(":", 1)[0]) == (status, code), reply
    if status == 405:
        assert reply.headers["Allow"] in {"GET", "POST"}
    assert records() == []


def test_the_lambda_handler_module_wires_the_door(
    monkeypatch: pytest.MonkeyPatch, aws: AwsStack, tmp_path: Path
) -> None:
    monkeypatch.setenv(CA_DIR_ENV, str(tmp_path / "ca"))
    monkeypatch.delitem(sys.modules, "lambdas.est", raising=False)
    handler_module = importlib.import_module("lambdas.est")
    event = proxy_event("GET", f"{EST}/cacerts", {}, b"", "127.0.0.1")
    response = handler_module.handler(event, DevLambdaContext(function_name="est"))
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/pkcs7-mime"
