"""The KMS engine: certificates signed by KMS keys, checked outside KMS; errors mapped for failover.

Classic key specs run against moto KMS (signatures verified against kms:GetPublicKey and chains
checked by `openssl verify -x509_strict` and pkilint); ML-DSA specs, and the exact DIGEST and
EXTERNAL_MU paths moto gets wrong, run against the KMS stand-in in tests/kms_standin.py.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge import EngineRouter, PermanentEngineError, SigningRequest, TransientEngineError
from certbridge.engines import engine_class
from certbridge.engines.kms import (
    KEY_SPECS,
    RAW_MESSAGE_LIMIT,
    KmsCAEngine,
    create_kms_hierarchy,
    load_kms_public_key,
)
from certbridge.engines.local import LocalCAEngine
from certbridge.remote_signing import verify_signature
from certplane.config import CARegistration, Settings
from certplane.lifecycle import IssueRequest
from certplane.runtime import create_engine
from tests.conftest import AwsStack, CsrFactory, LifecycleFactory
from tests.kms_standin import KmsStandIn

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
CLASSIC_SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "RSA_2048", "RSA_3072", "RSA_4096")
MLDSA_SPECS = ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")


def signing_request(public_key: Any = None, sans: int = 0, serial: int = 0x1D) -> SigningRequest:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    key = public_key or ec.generate_private_key(ec.SECP256R1()).public_key()
    key_usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(False, None)),
        x509.Extension(x509.KeyUsage.oid, True, key_usage),
        x509.Extension(
            x509.ExtendedKeyUsage.oid,
            False,
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        ),
        x509.Extension(
            x509.SubjectKeyIdentifier.oid, False, x509.SubjectKeyIdentifier.from_public_key(key)
        ),
    ]
    if sans:
        names = [x509.DNSName(f"node-{index:04d}.fleet-a.devices.test") for index in range(sans)]
        extensions.append(
            x509.Extension(
                x509.SubjectAlternativeName.oid, False, x509.SubjectAlternativeName(names)
            )
        )
    return SigningRequest(
        serial_number=serial,
        public_key=key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kms-device-1")]),
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + datetime.timedelta(days=30),
        extensions=tuple(extensions),
    )


def record_sign_calls(client: Any) -> list[dict[str, Any]]:
    """Every kms:Sign request botocore builds on `client`, with its parameters."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register("provide-client-params.kms.Sign", record)
    return calls


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def openssl_verify(tmp_path: Path, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]):
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-CAfile",
            str(write_pem(tmp_path / "root.pem", chain[-1])),
            "-untrusted",
            str(write_pem(tmp_path / "chain.pem", *chain[:-1])),
            str(write_pem(tmp_path / "leaf.pem", leaf)),
        ],
        capture_output=True,
        text=True,
    )


def pkilint(path: Path) -> list[Any]:
    lint = subprocess.run(
        [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(path)],
        capture_output=True,
        text=True,
    )
    return json.loads(lint.stdout)["results"] if lint.returncode == 0 else [lint.stdout]


# -- against moto KMS ---------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", CLASSIC_SPECS)
def test_hierarchy_and_leaves_verify_against_the_kms_public_keys(
    aws: AwsStack, tmp_path: Path, key_spec: str
) -> None:
    kms = aws.session.client("kms")
    hierarchy = create_kms_hierarchy(kms, key_spec, "acme fleet", alias_prefix="fleet")
    engine = KmsCAEngine("kms-ca", key_id="alias/fleet-issuing", chain_pem=hierarchy.chain_pem)
    issued = engine.issue(signing_request())
    leaf = issued.certificate

    # every signature checks out against the key KMS says it holds, not against the chain
    root_key = load_kms_public_key(kms, hierarchy.root_key_id)
    issuing_key = load_kms_public_key(kms, "alias/fleet-issuing")
    spec = KEY_SPECS[key_spec]
    for certificate, key in ((hierarchy.root, root_key), (hierarchy.issuing, root_key)):
        verify_signature(key, certificate.signature, certificate.tbs_certificate_bytes, spec.kind)
    verify_signature(issuing_key, leaf.signature, leaf.tbs_certificate_bytes, spec.kind)
    assert hierarchy.issuing.public_key() == issuing_key
    assert leaf.signature_algorithm_oid._name == spec.certificate_algorithm
    assert engine.capabilities().signing_algorithm == spec.certificate_algorithm
    assert issued.chain == (hierarchy.issuing, hierarchy.root) == engine.chain()

    verify = openssl_verify(tmp_path, leaf, issued.chain)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for name, certificate in (
        ("leaf", leaf),
        ("issuing", hierarchy.issuing),
        ("root", hierarchy.root),
    ):
        assert pkilint(write_pem(tmp_path / f"{name}-lint.pem", certificate)) == []


def test_kms_sign_is_called_with_message_type_raw(aws: AwsStack) -> None:
    kms = aws.session.client("kms")
    calls = record_sign_calls(kms)
    hierarchy = create_kms_hierarchy(kms, "ECC_NIST_P256", "raw")
    assert [c["KeyId"] for c in calls] == [hierarchy.root_key_id] * 2  # root + issuing CA
    calls.clear()
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=kms
    )
    leaf = engine.issue(signing_request()).certificate
    (call,) = calls
    assert call["KeyId"] == hierarchy.issuing_key_id
    assert call["MessageType"] == "RAW" and call["SigningAlgorithm"] == "ECDSA_SHA_256"
    assert call["Message"] == leaf.tbs_certificate_bytes  # the TBS itself, never a digest


def test_configured_from_toml_through_the_lifecycle(
    aws: AwsStack, make_lifecycle: LifecycleFactory, csrs: CsrFactory, tmp_path: Path
) -> None:
    kms = aws.session.client("kms")
    hierarchy = create_kms_hierarchy(kms, "ECC_NIST_P384", "toml", alias_prefix="toml")
    chain_file = write_pem(tmp_path / "kms-chain.pem", *hierarchy.chain)
    registration = CARegistration.model_validate(
        {
            "id": "kms-p384",
            "engine": "kms",
            "options": {"key_id": "alias/toml-issuing", "chain_file": str(chain_file)},
        }
    )
    assert engine_class("kms") is KmsCAEngine
    engine = create_engine(registration, tmp_path / "unused")
    settings = _settings_with_route("device", ["kms-p384"], extra_cas=[registration])
    lifecycle = make_lifecycle(settings, {"kms-p384": engine})
    record = lifecycle.issue(
        IssueRequest(tenant="default", profile="device", csr=csrs.pem(), requester="tests")
    )
    assert record.ca_id == "kms-p384"
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    assert certificate.signature_algorithm_oid._name == "ecdsa-with-SHA384"
    certificate.verify_directly_issued_by(hierarchy.issuing)
    verify = openssl_verify(tmp_path, certificate, hierarchy.chain)
    assert verify.returncode == 0, verify.stderr


def test_a_key_that_is_not_the_chains_is_refused_before_signing(aws: AwsStack) -> None:
    kms = aws.session.client("kms")
    first = create_kms_hierarchy(kms, "ECC_NIST_P256", "first")
    second = create_kms_hierarchy(kms, "ECC_NIST_P256", "second")
    calls = record_sign_calls(kms)
    engine = KmsCAEngine(
        "kms-ca", key_id=second.issuing_key_id, chain_pem=first.chain_pem, kms_client=kms
    )
    with pytest.raises(PermanentEngineError, match="not the key of the configured issuing CA"):
        engine.issue(signing_request())
    assert calls == []


def test_an_encryption_key_is_refused(aws: AwsStack) -> None:
    kms = aws.session.client("kms")
    hierarchy = create_kms_hierarchy(kms, "RSA_2048", "usage")
    wrong = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    engine = KmsCAEngine(
        "kms-ca", key_id=wrong["KeyId"], chain_pem=hierarchy.chain_pem, kms_client=kms
    )
    with pytest.raises(PermanentEngineError, match="SIGN_VERIFY"):
        engine.issue(signing_request())


def test_unknown_key_is_permanent(aws: AwsStack) -> None:
    hierarchy = create_kms_hierarchy(aws.session.client("kms"), "ECC_NIST_P256", "gone")
    engine = KmsCAEngine("kms-ca", key_id="alias/does-not-exist", chain_pem=hierarchy.chain_pem)
    with pytest.raises(PermanentEngineError, match="NotFoundException"):
        engine.issue(signing_request())


def test_bad_chain_configuration_fails_at_start(aws: AwsStack, tmp_path: Path) -> None:
    hierarchy = create_kms_hierarchy(aws.session.client("kms"), "ECC_NIST_P256", "order")
    root_first = "".join(
        c.public_bytes(serialization.Encoding.PEM).decode() for c in reversed(hierarchy.chain)
    )
    for options, message in (
        ({"chain_pem": root_first}, "out of order"),
        ({"chain_pem": write_pem(tmp_path / "one.pem", hierarchy.issuing).read_text()}, "its root"),
        ({}, "exactly one of"),
        ({"chain_pem": "not pem"}, "not PEM"),
    ):
        with pytest.raises(PermanentEngineError, match=message):
            KmsCAEngine("kms-ca", key_id=hierarchy.issuing_key_id, **options)


# -- error mapping -------------------------------------------------------------------------

TRANSIENT = (
    "ThrottlingException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
)
PERMANENT = (
    "AccessDeniedException",
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
)


@pytest.fixture
def stubbed(tmp_path: Path) -> tuple[KmsCAEngine, Stubber, LocalCAEngine]:
    """An engine on a real botocore KMS client whose responses a Stubber scripts."""
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, "ECC_NIST_P256", "stubbed")
    client = boto3.client("kms", region_name="us-east-1")
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=client
    )
    stubber = Stubber(client)
    stubber.add_response(
        "get_public_key",
        standin.get_public_key(KeyId=hierarchy.issuing_key_id),
        {"KeyId": hierarchy.issuing_key_id},
    )
    engine_local = LocalCAEngine("local-standby", tmp_path / "standby")
    return engine, stubber, engine_local


@pytest.mark.parametrize("code", TRANSIENT)
def test_throttling_and_kms_failures_are_transient_and_fail_over(stubbed, code: str) -> None:
    engine, stubber, standby = stubbed
    stubber.add_client_error("sign", service_error_code=code, http_status_code=400)
    router = EngineRouter({"kms-ca": engine, "local-standby": standby})
    with stubber:
        engine_id, issued = router.issue(["kms-ca", "local-standby"], signing_request())
    assert engine_id == "local-standby"
    issued.certificate.verify_directly_issued_by(standby.chain()[0])
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_codes_raise_transient(stubbed, code: str) -> None:
    engine, stubber, _ = stubbed
    stubber.add_client_error("sign", service_error_code=code, http_status_code=400)
    with stubber, pytest.raises(TransientEngineError, match=code):
        engine.issue(signing_request())


@pytest.mark.parametrize("code", PERMANENT)
def test_access_denied_and_key_state_errors_are_permanent_and_do_not_fail_over(
    stubbed, code: str
) -> None:
    engine, stubber, standby = stubbed
    stubber.add_client_error("sign", service_error_code=code, http_status_code=400)
    router = EngineRouter({"kms-ca": engine, "local-standby": standby})
    with stubber, pytest.raises(PermanentEngineError, match=code):
        router.issue(["kms-ca", "local-standby"], signing_request())


def test_any_5xx_is_transient(stubbed) -> None:
    engine, stubber, _ = stubbed
    stubber.add_client_error("sign", service_error_code="SomethingNew", http_status_code=503)
    with stubber, pytest.raises(TransientEngineError):
        engine.issue(signing_request())


def test_get_public_key_errors_are_mapped_too(tmp_path: Path) -> None:
    hierarchy = create_kms_hierarchy(KmsStandIn(), "ECC_NIST_P256", "gpk")
    client = boto3.client("kms", region_name="us-east-1")
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=client
    )
    stubber = Stubber(client)
    stubber.add_client_error("get_public_key", "ThrottlingException", http_status_code=400)
    stubber.add_client_error("get_public_key", "AccessDeniedException", http_status_code=400)
    with stubber:
        with pytest.raises(TransientEngineError):
            engine.issue(signing_request())
        with pytest.raises(PermanentEngineError):
            engine.issue(signing_request())


def test_connection_errors_are_transient(tmp_path: Path) -> None:
    """A KMS endpoint nobody answers on: the engine gives up quickly and says transient."""
    hierarchy = create_kms_hierarchy(KmsStandIn(), "ECC_NIST_P256", "offline")
    engine = KmsCAEngine(
        "kms-ca",
        key_id=hierarchy.issuing_key_id,
        chain_pem=hierarchy.chain_pem,
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=0.5,
        max_attempts=1,
    )
    with pytest.raises(TransientEngineError, match="GetPublicKey"):
        engine.issue(signing_request())


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
    ],
)
def test_timeouts_during_sign_are_transient(error: Exception) -> None:
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, "ECC_NIST_P256", "timeout")
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=standin
    )
    engine.check_key()
    standin.inject.append(error)
    with pytest.raises(TransientEngineError):
        engine.issue(signing_request())
    assert engine.issue(signing_request()).certificate  # and the next request goes through


def test_disabled_key_is_permanent() -> None:
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, "ECC_NIST_P256", "disabled")
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=standin
    )
    engine.issue(signing_request())
    standin.disable_key(KeyId=hierarchy.issuing_key_id)
    with pytest.raises(PermanentEngineError, match="DisabledException"):
        engine.issue(signing_request())


# -- ML-DSA and large TBS, against the stand-in ---------------------------------------------


@pytest.mark.parametrize("key_spec", MLDSA_SPECS)
def test_mldsa_hierarchy_signed_by_kms(key_spec: str) -> None:
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, key_spec, "pq fleet", alias_prefix="pq")
    assert all(call["SigningAlgorithm"] == "ML_DSA_SHAKE_256" for call in standin.signed())
    assert all(call["MessageType"] == "RAW" for call in standin.signed())
    engine = KmsCAEngine(
        "kms-pq", key_id="alias/pq-issuing", chain_pem=hierarchy.chain_pem, kms_client=standin
    )
    issued = engine.issue(signing_request(mldsa.MLDSA65PrivateKey.generate().public_key()))
    level = key_spec.removeprefix("ML_DSA_")
    assert issued.certificate.signature_algorithm_oid._name == f"ML-DSA-{level}"
    assert engine.capabilities().signing_algorithm == f"ML-DSA-{level}"
    issuing_key = load_kms_public_key(standin, "alias/pq-issuing")
    issuing_key.verify(issued.certificate.signature, issued.certificate.tbs_certificate_bytes)
    hierarchy.issuing.verify_directly_issued_by(hierarchy.root)
    hierarchy.root.verify_directly_issued_by(hierarchy.root)


@pytest.mark.parametrize(
    ("key_spec", "message_type", "length"),
    [
        ("ML_DSA_65", "EXTERNAL_MU", 64),
        ("ECC_NIST_P256", "DIGEST", 32),
        ("ECC_NIST_P384", "DIGEST", 48),
    ],
)
def test_a_tbs_over_the_raw_limit_is_sent_prehashed(
    key_spec: str, message_type: str, length: int
) -> None:
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, key_spec, "big")
    engine = KmsCAEngine(
        "kms-big",
        key_id=hierarchy.issuing_key_id,
        chain_pem=hierarchy.chain_pem,
        kms_client=standin,
    )
    subject_key = mldsa.MLDSA87PrivateKey.generate().public_key()
    certificate = engine.issue(signing_request(subject_key, sans=60)).certificate
    assert len(certificate.tbs_certificate_bytes) > RAW_MESSAGE_LIMIT
    call = standin.signed()[-1]
    assert call["MessageType"] == message_type and len(call["Message"]) == length
    certificate.verify_directly_issued_by(hierarchy.issuing)


def test_unknown_key_spec_is_refused() -> None:
    with pytest.raises(PermanentEngineError, match="unsupported KMS key spec"):
        create_kms_hierarchy(KmsStandIn(), "ECC_SECG_P256K1", "k1")


def test_revoke_needs_nothing_from_kms() -> None:
    standin = KmsStandIn()
    hierarchy = create_kms_hierarchy(standin, "ECC_NIST_P256", "revoke")
    engine = KmsCAEngine(
        "kms-ca", key_id=hierarchy.issuing_key_id, chain_pem=hierarchy.chain_pem, kms_client=standin
    )
    before = len(standin.calls)
    assert engine.capabilities().supports_revocation
    engine.revoke(0x1D, x509.ReasonFlags.key_compromise, datetime.datetime.now(datetime.UTC))
    assert len(standin.calls) == before


def test_error_responses_of_the_standin_match_botocore_shape() -> None:
    """The stand-in raises what boto3 raises, so the mapping tested here is the real one."""
    with pytest.raises(ClientError) as caught:
        KmsStandIn().sign(KeyId="nope", Message=b"x", SigningAlgorithm="ECDSA_SHA_256")
    assert caught.value.response["Error"]["Code"] == "NotFoundException"


def _settings_with_route(
    profile: str, route: list[str], extra_cas: Sequence[CARegistration] = ()
) -> Settings:
    """The default settings with one profile's route replaced (and more CAs registered)."""
    data = Settings.load().model_dump()
    data["cas"].extend(ca.model_dump() for ca in extra_cas)
    for entry in data["profiles"]:
        if entry["name"] == profile:
            entry["route"] = route
    return Settings.model_validate(data)
