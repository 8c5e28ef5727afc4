"""Issue 4 item 5: certplane as a client of an xPKI back end, through its Certifier API.

The upstream is a second, real `certplane dev` (TLS, its own CA, tenants and inventory). The
engine issues with the upstream's SAT and its factory seed (X509), a first, in-process
certplane routes a profile to it (records re-keyed to the upstream's serial, the certificate
in both inventories), and revocation reaches the upstream's status endpoint. Failures are
classified: unreachable is transient; a foreign TLS trust anchor, a wrong host name, an
upstream refusal (with its error code), X509-authenticated revocation are permanent. Wire
details that a real upstream cannot be made to get wrong (5xx, 429, non-JSON, a leaf policy
did not approve, BER PKCS#7) are driven with `responses` stand-ins.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge import EngineRouter, PermanentEngineError, SigningRequest, TransientEngineError
from certbridge.engines.local import LocalCAEngine
from certbridge.engines.upstream import UpstreamCertifierEngine, certificate_id
from certbridge.engines.upstream_client import TRACKING_HEADER, tls_context
from certbridge.engines.upstream_pkcs7 import (
    Pkcs7Error,
    certificates_from_der,
    certificates_from_pem,
)
from certplane.config import Settings
from certplane.enroll.pkcs7 import certs_only_der, certs_only_pem
from certplane.lifecycle import IssueRequest
from certplane.model import format_serial
from certplane.policy import plan_certificate
from certplane.runtime import create_engine
from tests.e2e.conftest import DevProcess
from tests.engine_factories.upstream_certifier import engine_options, running_upstream

STUB = "https://upstream.test/v1/certifier"


@pytest.fixture(scope="module")
def upstream() -> DevProcess:
    return running_upstream()


def make_engine(engine_id: str = "upstream", **options: Any) -> UpstreamCertifierEngine:
    return UpstreamCertifierEngine(engine_id, **options)


def signing_request(
    common_name: str | None = "1UpDev01",
    key: Any = None,
    days: int = 30,
    sans: tuple[x509.GeneralName, ...] = (),
    profile: str = "device",
) -> SigningRequest:
    """What certplane's own policy decides for a device (the `device` profile)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    settings = Settings.load()
    chosen = settings.tenant_profile("default", profile)
    assert chosen is not None
    plan = plan_certificate(
        chosen,
        subject=subject,
        requested_sans=list(sans),
        public_key=key.public_key(),
        ca_not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3000),
        requested_days=days,
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))  # libCertifier's CSR: empty subject, EKU requested
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SigningRequest(
        serial_number=0x1234_5678_9ABC_DEF1,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
        csr_der=csr.public_bytes(serialization.Encoding.DER),
    )


def upstream_chain(server: DevProcess) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((server.home / "ca/chain.pem").read_bytes())


# -- against a real upstream certplane ---------------------------------------------------------


@pytest.mark.e2e
def test_sat_engine_issues_and_revokes_at_the_upstream(upstream: DevProcess) -> None:
    engine = make_engine(**engine_options(upstream))
    request = signing_request("1UpSat01")
    issued = engine.issue(request)
    leaf = issued.certificate

    assert leaf.public_key() == request.public_key
    assert leaf.subject == request.subject
    assert list(issued.chain) == upstream_chain(upstream) == list(engine.chain())
    assert abs(leaf.not_valid_after_utc - request.not_after) < datetime.timedelta(minutes=20)
    capabilities = engine.capabilities()
    assert capabilities.assigns_serial_numbers and capabilities.supports_revocation
    assert capabilities.signing_algorithm == leaf.signature_algorithm_oid._name

    # The upstream's own inventory holds it, issued to its SAT holder, with the serial it chose.
    issued_id = certificate_id(leaf)
    view = upstream.cli_json("cert", "show", issued_id)
    assert view["serial"] == format_serial(leaf.serial_number)
    assert view["status"] == "ISSUED" and view["profile"] == "device"
    assert view["requester"].startswith("certifier:sat:")
    assert engine.certificate_status(issued_id) == "GOOD"

    engine.revoke(leaf.serial_number, x509.ReasonFlags.key_compromise, datetime.datetime.now())
    assert engine.certificate_status(issued_id) == "REVOKED"
    view = upstream.cli_json("cert", "show", issued_id)
    assert view["status"] == "REVOKED" and view["revocation"]["reason"] == "keyCompromise"
    # Asked again (a retried revocation), the upstream's REVOKED status makes it a no-op.
    engine.revoke(leaf.serial_number, x509.ReasonFlags.key_compromise, datetime.datetime.now())


@pytest.mark.e2e
def test_x509_seed_engine_issues_but_cannot_revoke(
    upstream: DevProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = upstream.home
    seed_key = serialization.load_pem_private_key(
        (home / "bootstrap/seed.key").read_bytes(), password=None
    )
    encrypted = tmp_path / "seed.key"  # a passphrase-protected copy, passphrase from the env
    encrypted.write_bytes(
        seed_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    monkeypatch.setenv("UPSTREAM_SEED_PASSPHRASE", "s3cret")
    options = engine_options(
        upstream,
        auth="X509",
        sat_file=None,
        seed_certificate_file=str(home / "bootstrap/seed.pem"),
        seed_key_file=str(encrypted),
        seed_key_passphrase_env="UPSTREAM_SEED_PASSPHRASE",
    )
    engine = make_engine(**options)
    leaf = engine.issue(signing_request("1UpSeed1")).certificate
    seed = x509.load_pem_x509_certificate((home / "bootstrap/seed.pem").read_bytes())
    view = upstream.cli_json("cert", "show", certificate_id(leaf))
    assert view["requester"] == f"certifier:x509:{certificate_id(seed)}"

    assert not engine.capabilities().supports_revocation
    with pytest.raises(PermanentEngineError, match="X509 seed token and cannot revoke"):
        engine.revoke(leaf.serial_number, x509.ReasonFlags.unspecified, datetime.datetime.now())
    assert engine.certificate_status(certificate_id(leaf)) == "GOOD"


@pytest.mark.e2e
def test_a_lifecycle_routes_a_profile_to_the_upstream(
    upstream: DevProcess, make_lifecycle: Any, events: Any, aws: Any, tmp_path: Path
) -> None:
    """A first certplane (in process, moto) whose `bridged` profile routes to the upstream."""
    secret = aws.session.client("secretsmanager").create_secret(
        Name="certplane/upstream-sat",
        SecretString=(upstream.home / "bootstrap/sat-token").read_text(),
    )["ARN"]
    options = engine_options(upstream, sat_file=None, sat_secret=secret)
    toml_options = "\n".join(
        f"{key} = {json.dumps(value)}" for key, value in options.items() if value is not None
    )
    settings = Settings.from_toml(
        f"""
[[tenants]]
id = "fleet"
profiles = ["bridged"]

[[cas]]
id = "xpki"
engine = "certifier"

[cas.options]
{toml_options}

[[profiles]]
name = "bridged"
key_algorithms = ["P-256"]
extended_key_usages = ["clientAuth"]
max_validity_days = 365
default_validity_days = 90
route = ["xpki"]
"""
    )
    engine = create_engine(settings.cas[0], tmp_path)
    lifecycle = make_lifecycle(settings, {"xpki": engine})
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1Bridged")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )

    record = lifecycle.issue(
        IssueRequest(tenant="fleet", profile="bridged", csr=csr, requester="test:bridge")
    )
    leaf = x509.load_pem_x509_certificate((record.certificate_pem or "").encode())
    assert record.status == "ISSUED" and record.ca_id == "xpki"
    assert record.serial == format_serial(leaf.serial_number)  # re-keyed to the upstream's
    assert record.certificate_id == certificate_id(leaf)
    assert x509.load_pem_x509_certificates((record.chain_pem or "").encode()) == upstream_chain(
        upstream
    )
    view = upstream.cli_json("cert", "show", certificate_id(leaf))
    assert view["status"] == "ISSUED" and view["serial"] == record.serial

    lifecycle.revoke("fleet", record.certificate_id or "", "keyCompromise", "test:bridge")
    assert lifecycle.get("fleet", record.serial).status == "REVOKED"
    assert engine.certificate_status(certificate_id(leaf)) == "REVOKED"
    assert [kind for kind, _ in events()] == ["Certificate Issued", "Certificate Revoked"]


@pytest.mark.e2e
def test_upstream_refusal_is_permanent_with_its_code(upstream: DevProcess) -> None:
    engine = make_engine(
        **engine_options(
            upstream, profile_name="compact", subject_key_algorithms=["P-256", "P-384"]
        )
    )
    request = signing_request("1UpP384", key=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(PermanentEngineError, match=r"HTTP 400 unsupported_key: P-384") as caught:
        EngineRouter({"upstream": engine}).issue(["upstream"], request)
    assert TRACKING_HEADER in str(caught.value)


@pytest.mark.e2e
def test_a_foreign_trust_anchor_is_permanent(upstream: DevProcess) -> None:
    foreign = str(upstream.home / "bootstrap/bootstrap-ca.pem")  # a CA, not the TLS root
    engine = make_engine(**engine_options(upstream, ca_file=foreign))
    with pytest.raises(PermanentEngineError, match="does not verify against"):
        engine.issue(signing_request())


@pytest.mark.e2e
def test_an_unreachable_upstream_is_transient(upstream: DevProcess) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    engine = make_engine(
        **engine_options(upstream, base_url=f"https://127.0.0.1:{closed_port}/v1/certifier")
    )
    with pytest.raises(TransientEngineError, match="cannot reach the upstream"):
        engine.issue(signing_request())


# -- TLS host name (a TLS server whose certificate names another host) -------------------------


@pytest.fixture
def misnamed_tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS listener on 127.0.0.1 whose certificate (from a test CA) names other.test only."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("other.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.pem", tmp_path / "tls.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            with connection, context.wrap_socket(connection, server_side=True):
                pass
        except OSError:  # the client aborts the handshake: that is the point
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], tmp_path / "ca.pem"
    listener.close()
    thread.join(timeout=10)


def test_the_host_name_is_verified(misnamed_tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, ca_file = misnamed_tls_server
    local = LocalCAEngine("chain", tmp_path / "chain")
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in local.chain())
    )
    (tmp_path / "sat").write_text("token")
    engine = make_engine(
        base_url=f"https://127.0.0.1:{port}/v1/certifier",
        ca_file=str(ca_file),
        chain_file=str(chain_file),
        auth="SAT",
        sat_file=str(tmp_path / "sat"),
    )
    with pytest.raises(PermanentEngineError, match="does not verify against") as caught:
        engine.issue(signing_request())
    assert "mismatch" in str(caught.value)  # the CA is right, the name is not
    context = tls_context(str(ca_file))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.check_hostname


# -- wire behaviour against stand-ins ------------------------------------------------------


@pytest.fixture
def local_upstream(tmp_path: Path) -> LocalCAEngine:
    """A CA standing in for the upstream's, for replies the real upstream would not send."""
    return LocalCAEngine("stand-in", tmp_path / "stand-in")


@pytest.fixture
def stub_engine(local_upstream: LocalCAEngine, tmp_path: Path) -> UpstreamCertifierEngine:
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in local_upstream.chain())
    )
    (tmp_path / "sat").write_text("sat-token\n")
    return make_engine(
        base_url=STUB,
        chain_file=str(chain_file),
        auth="sat",
        sat_file=str(tmp_path / "sat"),
        profile_name="device",
        product_id="1101",
    )


def reply_for(ca: LocalCAEngine, request: SigningRequest, **changes: Any) -> dict[str, str]:
    """What a conforming upstream answers: leaf signed by the stand-in CA, leaf-first PKCS#7."""
    leaf = ca.issue(dataclasses.replace(request, **changes)).certificate
    return {
        "certificateId": certificate_id(leaf),
        "certificateChain": certs_only_pem([leaf, *ca.chain()]),
    }


def test_the_request_is_what_libcertifier_sends(
    stub_engine: UpstreamCertifierEngine, local_upstream: LocalCAEngine
) -> None:
    request = signing_request(
        "1Stub001",
        sans=(x509.DNSName("node-1.devices.test"),),
    )
    with responses.RequestsMock() as mock:
        mock.post(f"{STUB}/certificate", json=reply_for(local_upstream, request))
        issued = stub_engine.issue(request)
        sent = mock.calls[0].request
    assert issued.certificate.public_key() == request.public_key
    assert issued.chain == local_upstream.chain()
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/json; charset=utf-8"
    assert len(sent.headers["x-xpki-tracking-id"]) == 16
    assert sent.headers["x-xpki-source"] == "certplane"
    scheme, _, bearer = sent.headers["Authorization"].partition(" ")
    token = json.loads(base64.b64decode(bearer))
    assert scheme == "Bearer" and token["tokenType"] == "SAT" and token["token"] == "sat-token"
    assert isinstance(token["timestamp"], int) and len(token["nonce"]) == 16
    body = json.loads(sent.body)
    assert base64.b64decode(body["csr"]) == request.csr_der
    assert body["nodeAddress"] == "1Stub001"
    assert body["dnsNames"] == ["node-1.devices.test"]
    assert body["profileName"] == "device" and body["productId"] == "1101"
    assert body["validityDays"] == 30


def test_requests_the_xpki_api_cannot_carry_are_refused_before_sending(
    stub_engine: UpstreamCertifierEngine,
) -> None:
    request = signing_request()
    with_o = dataclasses.replace(
        request,
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
                x509.NameAttribute(NameOID.COMMON_NAME, "1Dev"),
            ]
        ),
    )
    uri = signing_request(sans=(x509.UniformResourceIdentifier("urn:dev:1"),))
    short = dataclasses.replace(
        request, not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    )
    p384 = signing_request(key=ec.generate_private_key(ec.SECP384R1()))
    other_key = dataclasses.replace(
        request, public_key=ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    no_csr = dataclasses.replace(request, csr_der=None)
    with responses.RequestsMock():  # any call would fail: none is registered
        for bad, reason in (
            (with_o, "only by its CN"),
            (uri, "only DNS, IP and email"),
            (short, "less than a day"),
            (p384, "not P-384"),
            (other_key, "another key"),
            (no_csr, "only for a CSR"),
        ):
            with pytest.raises(PermanentEngineError, match=reason):
                stub_engine.issue(bad)


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (503, {"error": {"code": "busy", "message": "later"}}, TransientEngineError, "503 busy"),
        (429, "", TransientEngineError, "HTTP 429"),
        (408, "", TransientEngineError, "HTTP 408"),
        (403, {"errorCode": "E42", "errorMessage": "nope"}, PermanentEngineError, "E42: nope"),
        (302, "", PermanentEngineError, "redirect"),
        (200, "<html>portal</html>", PermanentEngineError, "not a JSON object"),
        (200, {"certificateId": "0" * 40}, PermanentEngineError, "certificateChain"),
    ],
)
def test_upstream_answers_are_classified(
    stub_engine: UpstreamCertifierEngine,
    status: int,
    body: Any,
    error: type[Exception],
    message: str,
) -> None:
    with responses.RequestsMock() as mock:
        kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
        mock.post(f"{STUB}/certificate", status=status, **kwargs)
        with pytest.raises(error, match=message):
            stub_engine.issue(signing_request())


def test_a_refused_sat_is_read_again(
    stub_engine: UpstreamCertifierEngine, local_upstream: LocalCAEngine, tmp_path: Path
) -> None:
    """After a 401 the secret is re-read, so a rotated SAT is picked up without a restart."""
    request = signing_request()
    with responses.RequestsMock() as mock:
        unknown = {"error": {"code": "unknown_token", "message": "the SAT token is not known"}}
        mock.post(f"{STUB}/certificate", status=401, json=unknown)
        mock.post(f"{STUB}/certificate", json=reply_for(local_upstream, request))
        with pytest.raises(PermanentEngineError, match="401 unknown_token"):
            stub_engine.issue(request)
        (tmp_path / "sat").write_text("rotated-token\n")
        stub_engine.issue(request)
        tokens = [
            json.loads(base64.b64decode(call.request.headers["Authorization"].split()[1]))
            for call in mock.calls
        ]
    assert [token["token"] for token in tokens] == ["sat-token", "rotated-token"]
    assert tokens[0]["nonce"] != tokens[1]["nonce"]


def test_a_leaf_policy_did_not_approve_is_refused_and_withdrawn(
    stub_engine: UpstreamCertifierEngine, local_upstream: LocalCAEngine
) -> None:
    request = signing_request("1Asked")
    other_cn = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1Other")])
    longer = request.not_after + datetime.timedelta(days=2)
    with responses.RequestsMock() as mock:
        mock.post(
            f"{STUB}/certificate",
            json=reply_for(local_upstream, request, subject=other_cn, not_after=longer),
        )
        mock.post(f"{STUB}/revoke", json={"status": "REVOKED"})
        with pytest.raises(PermanentEngineError) as caught:
            stub_engine.issue(request)
        revoke = json.loads(mock.calls[1].request.body)
    assert "subject 'CN=1Other'" in str(caught.value) and "too late" in str(caught.value)
    assert "it was revoked at the upstream" in str(caught.value)
    assert revoke["revokeReason"] == "UNSPECIFIED" and len(revoke["certificateId"]) == 40


def test_a_chain_to_another_root_is_refused(
    stub_engine: UpstreamCertifierEngine, tmp_path: Path
) -> None:
    impostor = LocalCAEngine("impostor", tmp_path / "impostor")
    request = signing_request()
    with responses.RequestsMock() as mock:
        mock.post(f"{STUB}/certificate", json=reply_for(impostor, request))
        mock.post(f"{STUB}/revoke", status=500)
        with pytest.raises(PermanentEngineError, match="not the configured root"):
            stub_engine.issue(request)


def test_revoke_needs_the_id_of_a_certificate_it_issued(
    stub_engine: UpstreamCertifierEngine, local_upstream: LocalCAEngine
) -> None:
    """By serial only what this instance issued; by certificate (or id) anything."""
    leaf = local_upstream.issue(signing_request()).certificate
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(PermanentEngineError, match="revoke_certificate_id"):
        stub_engine.revoke(leaf.serial_number, x509.ReasonFlags.superseded, now)
    with responses.RequestsMock() as mock:
        mock.post(f"{STUB}/revoke", json={"status": "REVOKED"})
        stub_engine.revoke_certificate(leaf, x509.ReasonFlags.superseded, now)
        sent = json.loads(mock.calls[0].request.body)
    assert sent == {"revokeReason": "SUPERSEDED", "certificateId": certificate_id(leaf)}
    with pytest.raises(PermanentEngineError, match="no revocation reason"):
        stub_engine.revoke_certificate_id("0" * 40, x509.ReasonFlags.remove_from_crl)


def test_engine_options_are_checked_at_construction(tmp_path: Path) -> None:
    base = {"base_url": STUB, "chain_file": "chain.pem", "auth": "SAT", "sat_env": "SAT"}
    for bad in (
        {"base_url": "http://upstream.test/v1/certifier"},
        {"auth": "password"},
        {"sat_env": None},
        {"sat_file": "sat"},
        {"auth": "X509", "sat_env": None},
        {"product_id": "not-hex"},
        {"subject_key_algorithms": ["DSA"]},
    ):
        with pytest.raises(ValueError):
            make_engine(**{**base, **bad})
    make_engine(**base)  # nothing is read or called yet


# -- the PKCS#7 reader -------------------------------------------------------------------------


def _indefinite(der: bytes) -> bytes:
    """The same PKCS#7 with the three outer layers in BER indefinite-length form."""

    def unwrap(element: bytes) -> tuple[int, bytes]:
        first = element[1]
        skip = 2 if first < 0x80 else 2 + (first & 0x7F)
        return element[0], element[skip:]

    tag, content_info = unwrap(der)
    oid_end = 2 + content_info[1]
    oid, explicit = content_info[:oid_end], content_info[oid_end:]
    explicit_tag, signed_data = unwrap(explicit)
    inner_tag, fields = unwrap(signed_data)
    eoc = b"\x00\x00"
    inner = bytes([inner_tag, 0x80]) + fields + eoc
    return bytes([tag, 0x80]) + oid + bytes([explicit_tag, 0x80]) + inner + eoc + eoc


def test_pkcs7_order_is_kept_and_ber_is_read(local_upstream: LocalCAEngine) -> None:
    issuing, root = local_upstream.chain()
    for order in ([issuing, root], [root, issuing]):
        assert certificates_from_pem(certs_only_pem(order)) == tuple(order)
        assert certificates_from_der(_indefinite(certs_only_der(order))) == tuple(order)
    der = certs_only_der([issuing, root])
    for broken in (b"", der[:-3], der + b"\x00", b"\x30\x80" + der[2:]):
        with pytest.raises(Pkcs7Error):
            certificates_from_der(broken)
