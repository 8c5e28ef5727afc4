"""The CA engines act as the CertBridge role when CERTPLANE_CERTBRIDGE_ROLE_ARN is set.

In moto: a KMS CA hierarchy made with the default credentials, then the KMS engine built the
way configuration builds it. With the variable set, the kms:Sign request itself must be signed
with the assumed role's credentials (its Authorization header names the assumed access key),
and STS must see that session as the role; without it, the default credentials sign.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from certbridge import aws_session
from certbridge.engines.kms import KmsCAEngine, create_kms_hierarchy
from tests.service.test_kms_engine import signing_request

ACCOUNT = "123456789012"  # moto's default account
ROLE_NAME = "CertplaneCertBridge-signer-eu-west-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


@pytest.fixture
def kms_engine_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    aws_session._session_for.cache_clear()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "CertplaneEnrollment-Est")
    with mock_aws():
        hierarchy = create_kms_hierarchy(
            boto3.client("kms"), "ECC_NIST_P256", "certbridge role test", alias_prefix="role"
        )

        def build() -> tuple[KmsCAEngine, list[str]]:
            engine = KmsCAEngine(
                "role-kms", key_id="alias/role-issuing", chain_pem=hierarchy.chain_pem
            )
            used: list[str] = []

            def record(request: Any, **_: Any) -> None:
                used.extend(CREDENTIAL.findall(request.headers["Authorization"].decode()))

            engine._client.meta.events.register("before-send.kms.Sign", record)
            return engine, used

        yield build
    aws_session._session_for.cache_clear()


def _issue_and_verify(engine: KmsCAEngine) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issued = engine.issue(signing_request(key))
    issuer = issued.chain[0].public_key()
    assert isinstance(issuer, ec.EllipticCurvePublicKey)
    issued.certificate.verify_directly_issued_by(issued.chain[0])


def test_engine_signs_as_the_certbridge_role(
    kms_engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(aws_session.ROLE_ENV, ROLE_ARN)
    engine, used = kms_engine_factory()
    _issue_and_verify(engine)

    session = aws_session.engine_session()
    assumed = session.get_credentials().get_frozen_credentials().access_key
    identity = session.client("sts").get_caller_identity()
    assert (
        identity["Arn"]
        == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/CertplaneEnrollment-Est"
    )
    default = boto3.Session().get_credentials().get_frozen_credentials().access_key
    assert assumed != default and assumed.startswith("ASIA")
    assert used and set(used) == {assumed}  # every kms:Sign went out as the role


def test_without_the_variable_the_default_credentials_sign(
    kms_engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(aws_session.ROLE_ENV, raising=False)
    engine, used = kms_engine_factory()
    _issue_and_verify(engine)
    default = boto3.Session().get_credentials().get_frozen_credentials().access_key
    assert used and set(used) == {default}
    identity = aws_session.engine_session().client("sts").get_caller_identity()
    assert ":assumed-role/" not in identity["Arn"]


def test_credentials_are_assumed_again_when_they_expire(
    kms_engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(aws_session.ROLE_ENV, ROLE_ARN)
    kms_engine_factory()
    credentials = aws_session.engine_session().get_credentials()
    first = credentials.get_frozen_credentials().access_key
    # Force expiry the way botocore checks it (its clock, not ours): a fresh AssumeRole follows.
    credentials._expiry_time = credentials._expiry_time.replace(year=2000)
    assert credentials.refresh_needed()
    second = credentials.get_frozen_credentials().access_key
    assert second != first and second.startswith("ASIA")


def test_session_name_is_safe_for_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "a function/with spaces" + "x" * 80)
    name = aws_session.session_name()
    assert len(name) == 64 and re.fullmatch(r"[\w+=,.@-]+", name)
