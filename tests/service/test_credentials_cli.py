"""`certplane credentials` seeds a deployed Principals table (moto), found via the stack output."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from certplane.auth.credentials import Credential, CredentialStore, key_identifier
from certplane.cli import credentials as credentials_cli
from certplane.cli.main import app
from certplane.resources import PRINCIPALS
from tests.conftest import REGION, AwsStack

runner = CliRunner()
DEPLOYED_NAME = "CertplaneInventory-PrincipalsTable1A2B3C-XYZ"


@pytest.fixture
def deployed(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Principals table under a CloudFormation-style name, exported by a stack output."""
    kwargs = PRINCIPALS.create_table_kwargs(DEPLOYED_NAME)
    aws.dynamodb.create_table(**kwargs)
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {credentials_cli.TABLE_OUTPUT: {"Value": DEPLOYED_NAME}},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=credentials_cli.INVENTORY_STACK, TemplateBody=json.dumps(template)
    )
    # The command repoints the model; restore it for the other tests.
    monkeypatch.setattr(Credential.Meta, "table_name", Credential.Meta.table_name)
    monkeypatch.setattr(Credential, "_connection", None)
    monkeypatch.delenv("CERTPLANE_PRINCIPALS_TABLE", raising=False)
    return aws


def _items(aws: AwsStack) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=DEPLOYED_NAME)["Items"]


def test_token_is_printed_once_stored_hashed_and_authenticates(deployed: AwsStack) -> None:
    result = runner.invoke(
        app, ["credentials", "token", "--tenant", "acme", "--name", "ops", "--role", "admin"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert len(token) >= 40
    items = _items(deployed)
    assert len(items) == 1
    assert token not in json.dumps(items)  # only its hash is stored
    principal = CredentialStore().authenticate_token(token)
    assert principal is not None
    assert (principal.tenant, principal.name, principal.roles) == ("acme", "ops", ("admin",))


def test_est_user_password_is_hashed_and_checked(deployed: AwsStack) -> None:
    password = "correct horse battery"
    result = runner.invoke(
        app,
        ["credentials", "est-user", "--tenant", "acme", "--username", "line-7"],
        input=f"{password}\n{password}\n",
    )
    assert result.exit_code == 0, result.output
    assert password not in json.dumps(_items(deployed))
    store = CredentialStore()
    assert store.authenticate_password("line-7", password).tenant == "acme"
    assert store.authenticate_password("line-7", "wrong password!!") is None


def test_short_est_password_is_refused_and_nothing_written(deployed: AwsStack) -> None:
    result = runner.invoke(
        app,
        ["credentials", "est-user", "--tenant", "acme", "--username", "u", "--password", "short"],
    )
    assert result.exit_code == 1
    assert "at least 12" in result.output
    assert _items(deployed) == []


def _ca(tmp_path: Path) -> tuple[Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Factory CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "factory-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert


def test_bootstrap_ca_is_trusted_for_its_tenant(deployed: AwsStack, tmp_path: Path) -> None:
    path, cert = _ca(tmp_path)
    result = runner.invoke(
        app,
        ["credentials", "bootstrap-ca", "--tenant", "acme", str(path), "--table", DEPLOYED_NAME],
    )
    assert result.exit_code == 0, result.output
    found = CredentialStore().bootstrap_ca(key_identifier(cert))
    assert found is not None and found[0] == "acme" and found[1] == cert


def test_bad_pem_is_refused_and_nothing_written(deployed: AwsStack, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    result = runner.invoke(app, ["credentials", "bootstrap-ca", "--tenant", "acme", str(bad)])
    assert result.exit_code == 1
    assert "not a readable PEM certificate" in result.output
    assert _items(deployed) == []


def test_missing_stack_is_a_clear_error(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Credential.Meta, "table_name", Credential.Meta.table_name)
    monkeypatch.delenv("CERTPLANE_PRINCIPALS_TABLE", raising=False)
    result = runner.invoke(app, ["credentials", "token", "--tenant", "acme", "--name", "ops"])
    assert result.exit_code == 1
    assert "AWS:" in result.output and "CertplaneInventory" in result.output
