"""The ACME engine against pebble (Debian's test ACME CA) and pebble-challtestsrv.

Real RFC 8555 end to end: account registration (with and without External Account Binding),
orders, http-01 answered by an HTTP server on the port pebble validates against, dns-01 via
challtestsrv's mock DNS, finalization with the device's CSR, chain download and preference,
revocation with reason codes (read back from pebble's management API), the account key
encrypted at rest, error classes, and issuance through the Lifecycle with records re-keyed to
the serial pebble chose. Chains are verified with cryptography and `openssl verify`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from certbridge import EngineRouter, PermanentEngineError, TransientEngineError
from certbridge.engines.acme import AcmeCAEngine, problem_error
from certbridge.engines.acme_account import ACCOUNT_KEY, AccountSetupError
from certbridge.engines.acme_challenges import ChallengeTask
from certbridge.engines.acme_dns import ChallTestSrvProvider
from certplane.config import Settings
from certplane.errors import RequestRejected
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.runtime import create_engine
from tests.acme_pebble import (
    BLOCKED_DOMAIN,
    EAB_KID,
    LIFETIME,
    PebbleWorld,
    dns_txt_query,
    free_port,
    pebble_world,
    planned_request,
)

PASSPHRASE_ENV = "CERTPLANE_TEST_ACME_PASSPHRASE"
PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture(scope="session")
def world() -> PebbleWorld:
    return pebble_world()


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


def engine_for(world: PebbleWorld, state: Path | str, **options: Any) -> AcmeCAEngine:
    """An engine on the shared pebble with the test defaults; `options` override them."""
    pebble = options.pop("pebble", world.pebble)
    engine_id = options.pop("engine_id", "pebble")
    settings: dict[str, Any] = {
        "roots_pem": pebble.roots_pem(0),
        "passphrase_env": PASSPHRASE_ENV,
        "agree_to_terms": True,
        "contact": ["mailto:pki@certplane.test"],
        "http01_responder": world.responder,
        "ca_bundle": str(pebble.tls_ca),
        "request_validity": True,  # pebble honours notBefore/notAfter in the order
        "poll_interval_seconds": 0.02,
        "timeout_seconds": 20,
    }
    settings.update(options)
    return AcmeCAEngine(engine_id, pebble.directory_url, str(state), **settings)


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def openssl_verify(folder: Path, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]):
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            write_pem(folder / "root.pem", chain[-1]),
            "-untrusted",
            write_pem(folder / "intermediates.pem", *chain[:-1]),
            write_pem(folder / "leaf.pem", leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def names_of(certificate: x509.Certificate) -> list[str]:
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(
        [*sans.get_values_for_type(x509.DNSName)]
        + [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    )


# -- issuance -----------------------------------------------------------------------------------


def test_http01_issuance_end_to_end(world: PebbleWorld, tmp_path: Path) -> None:
    engine = engine_for(world, tmp_path / "state")
    before = engine.capabilities()
    assert before.engine_type == "acme" and before.assigns_serial_numbers
    assert before.supports_revocation and not before.supports_crl_signing
    assert engine.chain() == (world.pebble.root(0),)  # nothing seen yet: the root alone

    request = planned_request(["www.http.certplane.test", "127.0.0.1"])
    world.responder.requests.clear()
    issued = EngineRouter({"pebble": engine}).issue(["pebble"], request)[1]
    leaf, chain = issued.certificate, issued.chain

    assert leaf.public_key() == request.public_key
    assert names_of(leaf) == ["127.0.0.1", "www.http.certplane.test"]
    assert (leaf.not_valid_before_utc, leaf.not_valid_after_utc) == (
        request.not_before,
        request.not_after,
    )
    assert leaf.serial_number != request.serial_number  # pebble picks its own
    assert chain == (world.pebble.intermediate(0), world.pebble.root(0))
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    openssl_verify(tmp_path, leaf, chain)

    # pebble's VA fetched both tokens from the responder, on the port pebble chose.
    hosts = {host.rsplit(":", 1)[0] for host, _ in world.responder.requests}
    assert hosts == {"www.http.certplane.test", "127.0.0.1"}
    assert world.responder.tokens == {}  # cleaned up

    after = engine.capabilities()
    assert engine.chain() == chain
    assert after.ca_not_after == chain[0].not_valid_after_utc
    assert after.signing_algorithm == leaf.signature_algorithm_oid._name
    assert after.max_validity == datetime.timedelta(days=90)


def test_dns01_issuance_through_challtestsrv(world: PebbleWorld, tmp_path: Path) -> None:
    """A name and its wildcard share one TXT name: both values are published together, are
    base64url(SHA-256(key authorization)) and are gone afterwards."""
    seen: dict[str, list[str]] = {}

    class Spy(ChallTestSrvProvider):
        def set_txt(self, records):
            super().set_txt(records)
            for name in records:  # what a resolver sees while pebble validates
                seen[name] = sorted(dns_txt_query(name, world.challtestsrv.dns_port))

    engine = engine_for(
        world,
        tmp_path / "state",
        challenge="dns-01",
        dns_provider=Spy(world.challtestsrv.management_url),
        http01_responder=None,
    )
    tasks: list[ChallengeTask] = []
    original = engine._solver.present
    engine._solver.present = lambda batch: (tasks.extend(batch), original(batch))[1]

    request = planned_request(["dns.certplane.test", "*.dns.certplane.test"])
    issued = engine.issue(request)

    assert names_of(issued.certificate) == ["*.dns.certplane.test", "dns.certplane.test"]
    record = "_acme-challenge.dns.certplane.test"
    assert list(seen) == [record] and len(seen[record]) == 2
    thumbprint = engine._session().jwk.thumbprint()
    expected = sorted(
        base64.urlsafe_b64encode(
            hashlib.sha256(
                f"{task.token}.{base64.urlsafe_b64encode(thumbprint).decode().rstrip('=')}".encode()
            ).digest()
        )
        .decode()
        .rstrip("=")
        for task in tasks
    )
    assert seen[record] == expected
    assert dns_txt_query(record, world.challtestsrv.dns_port) == []  # cleaned up
    openssl_verify(tmp_path, issued.certificate, issued.chain)


def test_the_chain_ending_at_the_most_preferred_root_is_kept(
    world: PebbleWorld, tmp_path: Path
) -> None:
    """pebble offers its default chain and an alternate (RFC 8555 §7.4.2 Link rel=alternate);
    the order of the configured roots is the preference."""
    alternate_first = engine_for(
        world, tmp_path / "a", roots_pem=world.pebble.roots_pem(1, 0)
    ).issue(planned_request(["alt.certplane.test"]))
    assert alternate_first.chain[-1] == world.pebble.root(1)
    openssl_verify(tmp_path, alternate_first.certificate, alternate_first.chain)

    default_only = engine_for(world, tmp_path / "b", roots_pem=world.pebble.roots_pem(0))
    assert default_only.issue(planned_request(["alt.certplane.test"])).chain[-1] == (
        world.pebble.root(0)
    )


def test_a_chain_to_no_configured_root_fails_over_and_the_certificate_is_kept(
    world: PebbleWorld, tmp_path: Path
) -> None:
    stranger = x509.load_pem_x509_certificate(Path(world.pebble.tls_ca).read_bytes())
    engine = engine_for(
        world,
        tmp_path / "state",
        roots_pem=stranger.public_bytes(serialization.Encoding.PEM).decode(),
    )
    with pytest.raises(TransientEngineError, match="ends at a configured root") as caught:
        engine.issue(planned_request(["orphan.certplane.test"]))
    serial = int(str(caught.value).split("serial ")[1].split(")")[0], 16)
    assert (tmp_path / "state" / "certificates" / f"{serial:x}.pem").is_file()
    engine.revoke(
        serial, x509.ReasonFlags.cessation_of_operation, datetime.datetime.now(datetime.UTC)
    )
    assert world.pebble.cert_status(serial)["Status"] == "Revoked"


def test_a_configured_chain_answers_before_the_first_certificate(
    world: PebbleWorld, tmp_path: Path
) -> None:
    intermediate = world.pebble.intermediate(0)
    chain_file = write_pem(tmp_path / "chain.pem", intermediate)  # the root is optional
    engine = engine_for(world, tmp_path / "state", chain_file=str(chain_file))
    assert engine.chain() == (intermediate, world.pebble.root(0))
    capabilities = engine.capabilities()
    assert capabilities.ca_not_after == intermediate.not_valid_after_utc
    assert capabilities.signing_algorithm == "sha256WithRSAEncryption"  # pebble's RSA issuer

    stranger = x509.load_pem_x509_certificate(Path(world.pebble.tls_ca).read_bytes())
    with pytest.raises(ValueError, match="chain_file"):
        engine_for(world, tmp_path / "s", chain_file=str(write_pem(tmp_path / "x.pem", stranger)))


def test_without_order_validity_the_ca_lifetime_must_fit_the_plan(
    world: PebbleWorld, tmp_path: Path
) -> None:
    """Let's Encrypt refuses notBefore/notAfter in orders and gives every certificate its own
    lifetime: a request it would outlive is refused before an order is spent on it."""
    engine = engine_for(world, tmp_path / "state", request_validity=False, max_validity_days=90)
    with pytest.raises(PermanentEngineError, match="90-day certificates"):
        engine.issue(planned_request(["short.certplane.test"], days=30))
    issued = engine.issue(planned_request(["full.certplane.test"], days=90))
    lifetime = issued.certificate.not_valid_after_utc - issued.certificate.not_valid_before_utc
    assert abs(lifetime - LIFETIME) <= datetime.timedelta(seconds=1)  # pebble's own choice


# -- refusals and error classes -------------------------------------------------------------------


def _without_network(world: PebbleWorld, tmp_path: Path, **options: Any) -> AcmeCAEngine:
    """An engine whose CA is unreachable: a refusal from it was decided locally."""
    engine = engine_for(world, tmp_path / "offline", **options)
    engine._directory_url = f"https://127.0.0.1:{free_port()}/dir"
    return engine


@pytest.mark.parametrize(
    ("make_request", "message"),
    [
        (
            lambda: planned_request(
                ["device-1.devices.test", "urn:uuid:0e6b"], profile="device", common_name="d-1"
            ),
            "only DNS names and IP addresses",
        ),
        (lambda: planned_request([], profile="device", common_name="device-7"), "no DNS or IP"),
        (
            lambda: dataclasses.replace(planned_request(["nocsr.certplane.test"]), csr_der=None),
            "has none",
        ),
        (
            lambda: planned_request(["a.certplane.test"], csr_names=["b.certplane.test"]),
            "takes the names from the CSR",
        ),
        (
            lambda: planned_request(["cn.devices.test"], profile="device", common_name="d-2"),
            "common name",
        ),
        (
            lambda: planned_request(
                ["ed.certplane.test"], key=ed25519.Ed25519PrivateKey.generate()
            ),
            "Ed25519",
        ),
    ],
    ids=["uri-san", "no-san", "no-csr", "csr-names-differ", "cn-not-a-name", "ed25519"],
)
def test_requests_a_public_ca_cannot_sign_are_refused_before_any_order(
    world: PebbleWorld, tmp_path: Path, make_request, message: str
) -> None:
    with pytest.raises(PermanentEngineError, match=message):
        _without_network(world, tmp_path).issue(make_request())


def test_a_wildcard_needs_dns01_and_an_ip_needs_http01(world: PebbleWorld, tmp_path: Path) -> None:
    with pytest.raises(PermanentEngineError, match="wildcards need dns-01"):
        _without_network(world, tmp_path).issue(
            planned_request(["w.certplane.test", "*.w.certplane.test"])
        )
    dns = _without_network(
        world,
        tmp_path,
        challenge="dns-01",
        dns_provider="challtestsrv",
        dns_provider_options={"url": world.challtestsrv.management_url},
    )
    with pytest.raises(PermanentEngineError, match="IP addresses need http-01"):
        dns.issue(planned_request(["ip.certplane.test", "127.0.0.2"]))


def test_the_ca_refusing_a_name_is_permanent(world: PebbleWorld, tmp_path: Path) -> None:
    engine = engine_for(world, tmp_path / "state")
    router = EngineRouter({"pebble": engine})
    with pytest.raises(PermanentEngineError, match="rejectedIdentifier"):
        router.issue(["pebble"], planned_request([f"www.{BLOCKED_DOMAIN}"]))
    assert router.health()["pebble"].healthy  # a refusal is not an outage


def test_a_failed_validation_is_permanent_and_cleaned_up(
    world: PebbleWorld, tmp_path: Path
) -> None:
    """A responder that serves the wrong content: pebble answers `unauthorized`."""

    class Wrong:
        def __init__(self) -> None:
            self.deleted: list[str] = []

        def put(self, identifier: str, token: str, content: str) -> None:
            world.responder.put(identifier, token, content + "-tampered")

        def delete(self, identifier: str, token: str) -> None:
            self.deleted.append(token)
            world.responder.delete(identifier, token)

    wrong = Wrong()
    engine = engine_for(world, tmp_path / "state", http01_responder=wrong)
    with pytest.raises(PermanentEngineError, match="unauthorized"):
        engine.issue(planned_request(["tampered.certplane.test"]))
    assert len(wrong.deleted) == 1 and world.responder.tokens == {}


def test_an_unreachable_ca_is_transient(world: PebbleWorld, tmp_path: Path) -> None:
    engine = _without_network(world, tmp_path)
    with pytest.raises(TransientEngineError, match="directory"):
        engine.issue(planned_request(["down.certplane.test"]))


def test_a_5xx_answer_is_transient(world: PebbleWorld, tmp_path: Path) -> None:
    """A CA behind a failing load balancer: an HTML 503, no problem document."""

    class Unavailable(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>Service Unavailable</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = engine_for(world, tmp_path / "state")
        engine._directory_url = f"http://127.0.0.1:{server.server_address[1]}/dir"
        with pytest.raises(TransientEngineError, match="directory"):
            engine.issue(planned_request(["busy.certplane.test"]))
    finally:
        server.shutdown()
        server.server_close()


def test_a_responder_that_fails_is_transient_and_cleaned_up(
    world: PebbleWorld, tmp_path: Path
) -> None:
    class Broken:
        def __init__(self) -> None:
            self.deleted = 0

        def put(self, identifier: str, token: str, content: str) -> None:
            raise OSError("the webroot is read-only")

        def delete(self, identifier: str, token: str) -> None:
            self.deleted += 1

    broken = Broken()
    engine = engine_for(world, tmp_path / "state", http01_responder=broken)
    with pytest.raises(TransientEngineError, match="read-only"):
        engine.issue(planned_request(["broken.certplane.test"]))
    assert broken.deleted == 1


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("rateLimited", TransientEngineError),
        ("serverInternal", TransientEngineError),
        ("badNonce", TransientEngineError),
        ("connection", TransientEngineError),
        ("rejectedIdentifier", PermanentEngineError),
        ("unauthorized", PermanentEngineError),
        ("malformed", PermanentEngineError),
        ("caa", PermanentEngineError),
        ("badCSR", PermanentEngineError),
        ("externalAccountRequired", AccountSetupError),
        ("userActionRequired", AccountSetupError),
    ],
)
def test_problem_types_map_to_error_classes(code: str, kind: type) -> None:
    from acme import messages

    problem = messages.Error(typ=f"urn:ietf:params:acme:error:{code}", detail="d")
    error = problem_error(problem, "do it")
    assert type(error) is kind and code in str(error)


def test_a_profile_the_ca_does_not_offer_makes_the_engine_unavailable(
    world: PebbleWorld, tmp_path: Path
) -> None:
    engine = engine_for(world, tmp_path / "state", profile="shortlived")
    with pytest.raises(AccountSetupError, match="offers no profile 'shortlived'"):
        engine.issue(planned_request(["profile.certplane.test"]))


# -- the account ------------------------------------------------------------------------------


def test_external_account_binding(world: PebbleWorld, tmp_path: Path) -> None:
    eab_pebble = world.eab_pebble()
    without = engine_for(world, tmp_path / "without", pebble=eab_pebble)
    with pytest.raises(AccountSetupError, match="External Account Binding"):
        without.issue(planned_request(["eab.certplane.test"]))

    hmac_file = tmp_path / "eab.key"
    hmac_file.write_text(eab_pebble.eab_keys[EAB_KID] + "\n")
    hmac_file.chmod(0o600)
    wrong_file = tmp_path / "wrong.key"
    wrong_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
    wrong = engine_for(
        world,
        tmp_path / "wrong",
        pebble=eab_pebble,
        eab_kid=EAB_KID,
        eab_hmac_key_file=str(wrong_file),
    )
    with pytest.raises(AccountSetupError):
        wrong.issue(planned_request(["eab.certplane.test"]))

    bound = engine_for(
        world,
        tmp_path / "bound",
        pebble=eab_pebble,
        eab_kid=EAB_KID,
        eab_hmac_key_file=str(hmac_file),
    )
    issued = bound.issue(planned_request(["eab.certplane.test"]))
    assert issued.chain[-1] == eab_pebble.root(0)


def test_the_account_key_is_generated_once_and_stored_encrypted(
    world: PebbleWorld, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = engine_for(world, state)
    first.issue(planned_request(["key.certplane.test"]))
    stored = state / ACCOUNT_KEY
    text = stored.read_text()
    assert "BEGIN ENCRYPTED PRIVATE KEY" in text and "BEGIN PRIVATE KEY" not in text
    assert stored.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TypeError):  # password was not given but private key is encrypted
        serialization.load_pem_private_key(text.encode(), None)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(text.encode(), b"not the passphrase at all")
    key = serialization.load_pem_private_key(text.encode(), PASSPHRASE.encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    openssl = subprocess.run(
        ["openssl", "pkey", "-in", str(stored), "-noout", "-passin", f"pass:{PASSPHRASE}"],
        capture_output=True,
        timeout=30,
    )
    assert openssl.returncode == 0, openssl.stderr

    second = engine_for(world, state)  # another process with the same state: same account
    second.issue(planned_request(["key.certplane.test"]))
    assert second._session().client.net.account.uri == first._session().client.net.account.uri
    assert stored.read_text() == text


def test_account_secrets_are_never_taken_from_configuration(
    world: PebbleWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="never put secrets"):
        engine_for(world, tmp_path / "s", passphrase=PASSPHRASE)
    with pytest.raises(ValueError, match="passphrase_env"):
        engine_for(world, tmp_path / "s", passphrase_env=None)
    monkeypatch.setenv(PASSPHRASE_ENV, "short")
    with pytest.raises(AccountSetupError, match="at least 16"):
        engine_for(world, tmp_path / "s").issue(planned_request(["s.certplane.test"]))

    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    engine_for(world, tmp_path / "s").issue(planned_request(["s.certplane.test"]))
    monkeypatch.setenv(PASSPHRASE_ENV, "another passphrase, long enough")
    router = EngineRouter({"pebble": engine_for(world, tmp_path / "s")})
    with pytest.raises(TransientEngineError):  # the route fails over; CA Unavailable follows
        router.issue(["pebble"], planned_request(["s.certplane.test"]))
    assert not router.health()["pebble"].healthy


# -- revocation ----------------------------------------------------------------------------------


def test_revocation_with_reason_codes(world: PebbleWorld, tmp_path: Path) -> None:
    engine = engine_for(world, tmp_path / "state")
    now = datetime.datetime.now(datetime.UTC)
    for reason, code in (
        (x509.ReasonFlags.key_compromise, 1),
        (x509.ReasonFlags.superseded, 4),
        (x509.ReasonFlags.cessation_of_operation, 5),
    ):
        serial = engine.issue(planned_request(["revoke.certplane.test"])).certificate.serial_number
        assert world.pebble.cert_status(serial)["Status"] == "Valid"
        engine.revoke(serial, reason, now)
        status = world.pebble.cert_status(serial)
        assert (status["Status"], status["Reason"]) == ("Revoked", code)
        engine.revoke(serial, reason, now)  # again: already revoked is fine

    with pytest.raises(PermanentEngineError, match="no certificate with serial"):
        engine.revoke(0x1234, x509.ReasonFlags.key_compromise, now)
    with pytest.raises(PermanentEngineError, match="no revocation reason"):
        engine.revoke(serial, x509.ReasonFlags.certificate_hold, now)


def test_state_in_s3_and_passphrase_in_secrets_manager(
    world: PebbleWorld, tmp_path: Path, aws
) -> None:
    """The AWS shape: every Lambda instance shares the account and the certificates through
    S3, and the passphrase never leaves Secrets Manager but for the process that uses it."""
    aws.session.client("s3").create_bucket(Bucket="certplane-acme")
    aws.session.client("secretsmanager").create_secret(
        Name="certplane/acme/pebble", SecretString=PASSPHRASE
    )
    state = "s3://certplane-acme/engines/pebble"
    options = {
        "passphrase_env": None,
        "passphrase_secret": "certplane/acme/pebble",
    }
    first = engine_for(world, state, **options)
    issued = first.issue(planned_request(["s3.certplane.test"]))
    serial = issued.certificate.serial_number
    keys = {
        item["Key"]
        for item in aws.session.client("s3").list_objects_v2(Bucket="certplane-acme")["Contents"]
    }
    assert keys == {
        f"engines/pebble/{ACCOUNT_KEY}",
        "engines/pebble/chain.pem",
        f"engines/pebble/certificates/{serial:x}.pem",
    }

    cold = engine_for(world, state, **options)  # another execution environment
    assert cold.chain() == issued.chain
    assert cold.capabilities().ca_not_after == issued.chain[0].not_valid_after_utc
    cold.revoke(serial, x509.ReasonFlags.superseded, datetime.datetime.now(datetime.UTC))
    assert world.pebble.cert_status(serial)["Reason"] == 4
    assert cold._session().client.net.account.uri == first._session().client.net.account.uri


# -- through the lifecycle, configured from TOML ---------------------------------------------


def test_issuance_through_the_lifecycle_is_recorded_under_pebble_serial(
    world: PebbleWorld, tmp_path: Path, make_lifecycle, events
) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_text(world.pebble.roots_pem(0))
    settings = Settings.from_toml(
        f"""
[[tenants]]
id = "default"
profiles = ["web"]

[[cas]]
id = "pebble"
engine = "acme"

[cas.options]
directory_url = "{world.pebble.directory_url}"
state = "{tmp_path / "acme-state"}"
roots_file = "{roots}"
ca_bundle = "{world.pebble.tls_ca}"
passphrase_env = "{PASSPHRASE_ENV}"
agree_to_terms = true
contact = ["mailto:pki@certplane.test"]
challenge = "http-01"
http01_webroot = "{world.webroot}"
request_validity = true
poll_interval_seconds = 0.02

[[profiles]]
name = "web"
extended_key_usages = ["serverAuth"]
max_validity_days = 90
default_validity_days = 60
common_name_in_san = true
route = ["pebble"]

[profiles.subject]
common_name_pattern = '[a-z0-9.-]+'

[profiles.san]
dns = ['[a-z0-9-]+\\.certplane\\.test']
required = true
"""
    )
    engine = create_engine(settings.cas[0], tmp_path / "unused")
    assert isinstance(engine, AcmeCAEngine)
    lifecycle = make_lifecycle(settings, {"pebble": engine})

    def csr_pem(name: str) -> str:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    record = lifecycle.issue(
        IssueRequest(
            tenant="default", profile="web", csr=csr_pem("life.certplane.test"), requester="alice"
        )
    )
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    assert record.status == "ISSUED" and record.ca_id == "pebble"
    assert int(record.serial, 16) == certificate.serial_number
    assert record.allocated_serial and record.allocated_serial != record.serial
    assert world.pebble.cert_status(certificate.serial_number)["Status"] == "Valid"
    assert not list((world.webroot / ".well-known" / "acme-challenge").iterdir())

    with pytest.raises(RequestRejected):  # same key, no CSR: ACME needs one
        lifecycle.renew(RenewRequest(tenant="default", reference=record.serial, requester="alice"))
    renewed = lifecycle.renew(
        RenewRequest(
            tenant="default",
            reference=record.serial,
            requester="alice",
            csr=csr_pem("life.certplane.test"),
        )
    )
    lifecycle.revoke("default", renewed.serial, "keyCompromise", "alice")
    status = world.pebble.cert_status(int(renewed.serial, 16))
    assert (status["Status"], status["Reason"]) == ("Revoked", 1)
    assert [detail_type for detail_type, _ in events()] == [
        "Certificate Issued",
        "Certificate Issuance Failed",
        "Certificate Renewed",
        "Certificate Revoked",
    ]
