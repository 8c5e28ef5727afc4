"""Shared fixtures: an embedded AWS (moto) with certplane's tables, bus and an event tap.

Every AWS resource is created from `certplane.resources`, the one source of truth the CDK
stacks and `certplane dev` use, so a test can only pass against the tables production has.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from moto import mock_aws

from certbridge import CAEngine, EngineRouter
from certbridge.engines.local import LocalCAEngine
from certplane.auth.credentials import Credential
from certplane.config import Settings
from certplane.events import SOURCE, EventPublisher, validate_detail
from certplane.inventory import CertificateRecord, Inventory
from certplane.lifecycle import Lifecycle
from certplane.resources import DEV_EVENT_TAP, EVENT_BUS, IDEMPOTENCY, TABLES

REGION = "us-east-1"
PYNAMODB_MODELS = (CertificateRecord, Credential)
# pynamodb caches a TableConnection (and its botocore client) per model class. A client made
# under one mock_aws keeps working under the next (moto hooks every botocore client and resets
# its backends on start), so resetting is not needed for isolation; it would only cost ~50 ms a
# test to load the DynamoDB service model again. Flip this to rule the cache out when in doubt.
RESET_PYNAMODB_CONNECTIONS = False


# -- environment -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and one region; nothing a test does can reach a real account."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "POWERTOOLS_IDEMPOTENCY_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "certplane-tests")


def _reset_pynamodb_connections() -> None:
    """pynamodb caches one TableConnection (and botocore client) per model class."""
    for model in PYNAMODB_MODELS:
        model._connection = None


@dataclass
class AwsStack:
    """Clients for the embedded AWS and the URL of the queue that taps the certplane bus."""

    dynamodb: Any
    events: Any
    sqs: Any
    bus_name: str
    tap_queue_url: str
    session: boto3.Session


@pytest.fixture(scope="session")
def boto_session() -> boto3.Session:
    """One session for every test: its loader caches the service models (~40 ms a client)."""
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )


@pytest.fixture
def aws(boto_session: boto3.Session) -> Iterator[AwsStack]:
    """moto with every certplane table, the bus and a rule copying certplane events to SQS."""
    with mock_aws():
        if RESET_PYNAMODB_CONNECTIONS:
            _reset_pynamodb_connections()
        dynamodb = boto_session.client("dynamodb")
        for spec in TABLES:
            dynamodb.create_table(**spec.create_table_kwargs())
        events = boto_session.client("events")
        sqs = boto_session.client("sqs")
        bus_name = EVENT_BUS.default_name
        events.create_event_bus(Name=bus_name)
        queue_url = sqs.create_queue(QueueName=DEV_EVENT_TAP.queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name=DEV_EVENT_TAP.name,
            EventBusName=bus_name,
            EventPattern=json.dumps(DEV_EVENT_TAP.pattern),
            State="ENABLED",
        )
        events.put_targets(
            Rule=DEV_EVENT_TAP.name,
            EventBusName=bus_name,
            Targets=[{"Id": "tap", "Arn": queue_arn}],
        )
        yield AwsStack(dynamodb, events, sqs, bus_name, queue_url, boto_session)


# -- events ------------------------------------------------------------------------------


class EventTap:
    """Drains the tap queue; every event read is checked against the §4 contract."""

    def __init__(self, stack: AwsStack) -> None:
        self._stack = stack
        self.envelopes: list[dict[str, Any]] = []

    def check(self, envelope: dict[str, Any]) -> None:
        check_envelope(envelope)

    def __call__(self) -> list[tuple[str, dict[str, Any]]]:
        """The events put since the previous call, as (detail-type, detail), oldest first."""
        drained: list[dict[str, Any]] = []
        while True:
            response = self._stack.sqs.receive_message(
                QueueUrl=self._stack.tap_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = message["Body"]
                assert "PRIVATE KEY" not in body, "an event carries private key material"
                drained.append(json.loads(body))
                self._stack.sqs.delete_message(
                    QueueUrl=self._stack.tap_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        drained.sort(key=lambda envelope: envelope["detail"]["occurredAt"])
        for envelope in drained:
            check_envelope(envelope)
        self.envelopes.extend(drained)
        return [(envelope["detail-type"], envelope["detail"]) for envelope in drained]


def check_envelope(envelope: dict[str, Any]) -> None:
    """source, tenant, schema, and no private key anywhere in the event."""
    assert envelope["source"] == SOURCE
    detail = envelope["detail"]
    assert detail["tenant"]
    assert detail["schemaVersion"] == "1.0"
    validate_detail(envelope["detail-type"], detail)
    text = json.dumps(envelope)
    assert "PRIVATE KEY" not in text
    assert "privateKey" not in text and "private_key" not in text


@pytest.fixture
def events(aws: AwsStack) -> EventTap:
    return EventTap(aws)


# -- CA engines and the lifecycle --------------------------------------------------------


@pytest.fixture
def local_engine(tmp_path: Path) -> LocalCAEngine:
    return LocalCAEngine("local-dev", tmp_path / "ca-local-dev")


@pytest.fixture
def settings() -> Settings:
    return Settings.load()


LifecycleFactory = Callable[..., Lifecycle]


@pytest.fixture
def make_lifecycle(aws: AwsStack) -> LifecycleFactory:
    """Build a Lifecycle for any settings and engines, wired to the embedded AWS."""

    def build(settings: Settings, engines: dict[str, CAEngine]) -> Lifecycle:
        return Lifecycle(
            settings,
            Inventory(settings.expiry_shards),
            EngineRouter(engines),
            EventPublisher(aws.events, aws.bus_name),
            DynamoDBPersistenceLayer(
                table_name=IDEMPOTENCY.default_name,
                boto3_client=aws.session.client("dynamodb"),
            ),
        )

    return build


@pytest.fixture
def lifecycle(
    make_lifecycle: LifecycleFactory, settings: Settings, local_engine: LocalCAEngine
) -> Lifecycle:
    return make_lifecycle(settings, {"local-dev": local_engine})


# -- keys and CSRs -----------------------------------------------------------------------

KEY_TYPES = ("P-256", "P-384", "Ed25519", "RSA-2048", "RSA-1024", "P-192")
ALLOWED_KEY_TYPES = ("P-256", "P-384", "Ed25519", "RSA-2048")
REFUSED_KEY_TYPES = ("RSA-1024", "P-192")
_KEY_CACHE: dict[str, Any] = {}


def new_key(kind: str) -> Any:
    """A fresh private key of one of KEY_TYPES."""
    if kind == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "P-192":
        return ec.generate_private_key(ec.SECP192R1())
    if kind == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith("RSA-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    raise ValueError(kind)


def cached_key(kind: str) -> Any:
    """One key per kind for the whole session (RSA generation is slow)."""
    if kind not in _KEY_CACHE:
        _KEY_CACHE[kind] = new_key(kind)
    return _KEY_CACHE[kind]


def subject_name(
    common_name: str | None = None, extra: Sequence[tuple[x509.ObjectIdentifier, str]] = ()
) -> x509.Name:
    attributes = [x509.NameAttribute(oid, value) for oid, value in extra]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def build_csr(
    key: Any,
    common_name: str | None = "device-0001",
    sans: Sequence[x509.GeneralName] = (),
    extra_subject: Sequence[tuple[x509.ObjectIdentifier, str]] = (),
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject_name(common_name, extra_subject)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def csr_pem(
    key: Any,
    common_name: str | None = "device-0001",
    sans: Sequence[x509.GeneralName] = (),
    extra_subject: Sequence[tuple[x509.ObjectIdentifier, str]] = (),
) -> str:
    """A PEM CSR for `key` with the given subject common name, SANs and extra attributes."""
    csr = build_csr(key, common_name, sans, extra_subject)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def csr_der(key: Any, common_name: str | None = "device-0001") -> bytes:
    return build_csr(key, common_name).public_bytes(serialization.Encoding.DER)


@dataclass
class CsrFactory:
    """Keys by kind (cached per session unless fresh=True) and CSRs for them."""

    made: list[Any] = field(default_factory=list)

    def key(self, kind: str = "P-256", fresh: bool = False) -> Any:
        key = new_key(kind) if fresh else cached_key(kind)
        self.made.append(key)
        return key

    def pem(
        self,
        kind: str = "P-256",
        common_name: str | None = "device-0001",
        sans: Sequence[x509.GeneralName] = (),
        extra_subject: Sequence[tuple[x509.ObjectIdentifier, str]] = (),
        key: Any = None,
    ) -> str:
        return csr_pem(key or self.key(kind), common_name, sans, extra_subject)

    def csr(
        self,
        kind: str = "P-256",
        common_name: str | None = "device-0001",
        sans: Sequence[x509.GeneralName] = (),
        extra_subject: Sequence[tuple[x509.ObjectIdentifier, str]] = (),
        key: Any = None,
    ) -> x509.CertificateSigningRequest:
        return build_csr(key or self.key(kind), common_name, sans, extra_subject)


@pytest.fixture
def csrs() -> CsrFactory:
    return CsrFactory()


# -- DynamoDB call recording -------------------------------------------------------------


@dataclass
class DynamoCalls:
    """Every DynamoDB operation pynamodb made: (operation name, request parameters)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def clear(self) -> None:
        self.calls.clear()

    @property
    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    def index_names(self, operation: str = "Query") -> set[str | None]:
        return {kwargs.get("IndexName") for name, kwargs in self.calls if name == operation}


@pytest.fixture
def dynamo_calls(monkeypatch: pytest.MonkeyPatch) -> DynamoCalls:
    from pynamodb.connection.base import Connection

    recorder = DynamoCalls()
    original = Connection._make_api_call

    def recording(self: Connection, operation_name: str, operation_kwargs: dict) -> dict:
        recorder.calls.append((operation_name, dict(operation_kwargs)))
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", recording)
    return recorder
