"""Issue 8 (import_ms): a handler's cold start loads only what its requests need.

Structural, not wall-clock: each handler module is imported in a fresh interpreter and the
test checks which heavy modules ended up in sys.modules. jsonschema is for connectors (event
validation), the idempotency store's DynamoDB client for requests with an idempotency key,
each CA engine for configurations that name it, and test/dev tools never belong to a Lambda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEVER_IN_A_HANDLER = ("moto", "pytest", "aws_cdk", "typer", "rich")
# The default configuration routes only to local engines.
UNCONFIGURED_ENGINES = (
    "certbridge.engines.kms",
    "certbridge.engines.pca",
    "certbridge.engines.acme",
    "certbridge.engines.pkcs11",
    "certbridge.engines.upstream",
    "acme",
    "josepy",
    "pkcs11",
)
SCHEMA_VALIDATION = ("jsonschema", "referencing", "rpds")
# botocore is loaded by pynamodb; boto3 (with s3transfer and multiprocessing) only by what
# talks to S3 or Step Functions, or keeps idempotency records, at first use.
BOTO3_AND_IDEMPOTENCY = (
    "boto3",
    "s3transfer",
    "multiprocessing",
    "aws_lambda_powertools.utilities.idempotency",
)
ENROLLMENT = ("lambdas.est", "lambdas.certifier_api")
API_HANDLERS = (*ENROLLMENT, "lambdas.management_api")
ALL_CORE_HANDLERS = (*API_HANDLERS, "lambdas.ocsp", "lambdas.crl_publisher")

# Run in the child: import the handler, then report the modules and AWS clients it created.
PROBE = """
import json, sys
import botocore.client

made = []
original = botocore.client.ClientCreator.create_client


def recording(self, service_name, *args, **kwargs):
    made.append(service_name)
    return original(self, service_name, *args, **kwargs)


botocore.client.ClientCreator.create_client = recording
import {module}  # noqa: E402

print(json.dumps({{"modules": sorted(sys.modules), "clients": made}}))
"""


def _cold_import(module: str, tmp_path: Path) -> dict[str, list[str]]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "CERTPLANE_", "PYTHON"))
    }
    environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="1",
        CERTPLANE_CA_DIR=str(tmp_path / "ca"),
        CERTPLANE_OCSP_DIR=str(tmp_path / "ocsp"),
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


@pytest.mark.parametrize("module", ALL_CORE_HANDLERS)
def test_handlers_load_no_schema_validator_engine_or_tooling_they_do_not_use(module, tmp_path):
    modules = _cold_import(module, tmp_path)["modules"]
    assert module in modules  # the probe really imported the handler
    assert _loaded(modules, SCHEMA_VALIDATION) == []
    assert _loaded(modules, UNCONFIGURED_ENGINES) == []
    assert _loaded(modules, NEVER_IN_A_HANDLER) == []


@pytest.mark.parametrize("module", API_HANDLERS)
def test_api_handlers_load_boto3_and_idempotency_only_when_used(module, tmp_path):
    modules = _cold_import(module, tmp_path)["modules"]
    assert "botocore" in modules and "pynamodb" in modules
    assert _loaded(modules, BOTO3_AND_IDEMPOTENCY) == []


@pytest.mark.parametrize("module", ENROLLMENT)
def test_enrollment_doors_create_no_aws_client_at_cold_start(module, tmp_path):
    # pynamodb connects at its first query, the bus client at the first event, and the
    # idempotency store at the first request with a key (these doors never send one).
    assert _cold_import(module, tmp_path)["clients"] == []
