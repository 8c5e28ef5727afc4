"""`certplane ca create-kms` on moto KMS: its printed [[cas]] entry issues through the lifecycle."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner

from certplane.cli.main import app
from certplane.config import CARegistration
from certplane.lifecycle import IssueRequest
from certplane.runtime import create_engine
from tests.conftest import AwsStack, CsrFactory, LifecycleFactory
from tests.service.test_kms_engine import _settings_with_route, openssl_verify

runner = CliRunner()
ARGS = ["ca", "create-kms", "--id", "kms-fleet", "--name", "Acme fleet"]


def test_printed_entry_configures_a_kms_ca_that_issues(
    aws: AwsStack, make_lifecycle: LifecycleFactory, csrs: CsrFactory, tmp_path: Path
) -> None:
    chain_out = tmp_path / "chain.pem"
    result = runner.invoke(
        app, [*ARGS, "--alias-prefix", "acme-fleet", "--chain-out", str(chain_out)]
    )
    assert result.exit_code == 0, result.output
    entry = tomllib.loads(result.stdout)["cas"][0]
    assert entry["engine"] == "kms" and entry["options"]["key_id"] == "alias/acme-fleet-issuing"
    issuing, root = x509.load_pem_x509_certificates(entry["options"]["chain_pem"].encode())
    assert chain_out.read_text() == entry["options"]["chain_pem"]
    assert issuing.subject.rfc4514_string().startswith("CN=Acme fleet Issuing CA")
    # Independent check of the hierarchy KMS signed: openssl, root as the only trust anchor.
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    verified = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", tmp_path / "root.pem", chain_out],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr

    registration = CARegistration.model_validate(entry)
    engine = create_engine(registration, tmp_path / "unused")
    lifecycle = make_lifecycle(
        _settings_with_route("device", ["kms-fleet"], extra_cas=[registration]),
        {"kms-fleet": engine},
    )
    record = lifecycle.issue(
        IssueRequest(tenant="default", profile="device", csr=csrs.pem(), requester="tests")
    )
    leaf = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    assert record.ca_id == "kms-fleet"
    verify = openssl_verify(tmp_path, leaf, (issuing, root))
    assert verify.returncode == 0, verify.stderr


def test_unknown_key_spec_is_refused_without_creating_keys(aws: AwsStack) -> None:
    result = runner.invoke(app, [*ARGS, "--alias-prefix", "x", "--key-spec", "ECC_SECG_P256K1"])
    assert result.exit_code == 1
    assert "unsupported KMS key spec" in result.output
    assert aws.session.client("kms").list_keys()["Keys"] == []
