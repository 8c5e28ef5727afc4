"""Deploy smoke test: every stack `build_app` synthesizes, deployed into an embedded moto account
with CloudFormation, then one issuance through the deployed management API function and one
renewal sweep through the deployed state machine.

The handlers run from the deployed code package with the deployed environment
(tests/deploy/moto_service.py); the certificate is checked by openssl, the event by an SQS
queue the test subscribes to the deployed bus. One deployment per module (~40 s).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdk.deployed_config import PATH_IN_LAMBDA
from certbridge.engines.local import create_local_ca
from certplane import resources
from certplane.config import Settings
from certplane.dev.front import proxy_event
from certplane.events import validate_detail
from tests.deploy.harness import (
    CORE_TYPES,
    MOTO_SKIPPED_TYPES,
    Deployment,
    MotoAccount,
    deploy,
    synthesize,
)

# One deployment per module: under `make test` (--dist loadgroup) every test here runs on the
# same xdist worker, so the module fixture deploys once.
pytestmark = pytest.mark.xdist_group("deploy-smoke")
TENANT = "default"
EVENT_WAIT_SECONDS = 20
SWEEP_WAIT_SECONDS = 60
# cdk/state_machine.py pins the logical id (`logical_id_of`): "<spec logical id>StateMachine".
SWEEP_LOGICAL_ID = "RenewalSweepStateMachine"


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The configured local CAs, made here: the local CA engine refuses to create keys inside
    Lambda (each instance has its own /tmp), so every function is given this folder."""
    folder = tmp_path_factory.mktemp("ca")
    for ca in Settings.load().cas:
        if ca.engine == "local":
            create_local_ca(folder / ca.id, ca.name or f"certplane {ca.id}", **dict(ca.options))
    return folder


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, ca_dir: Path) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("deploy")
    synth = synthesize(work / "cdk.out")
    account = MotoAccount(work / "account", overlay={resources.CA_DIR_ENV: str(ca_dir)})
    try:
        yield deploy(account, synth)
    finally:
        account.stop()
        shutil.rmtree(synth.outdir, ignore_errors=True)  # the dependency layer alone is ~70 MB


@dataclass
class Api:
    """Invokes the deployed management API function as API Gateway's proxy integration does."""

    deployment: Deployment
    function_name: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        payload = json.dumps(body).encode() if body is not None else b""
        event = proxy_event(method, path, headers, payload, "198.51.100.7")
        reply = self.deployment.account.client("lambda").invoke(
            FunctionName=self.function_name, Payload=json.dumps(event).encode()
        )
        result = json.loads(reply["Payload"].read())
        assert "FunctionError" not in reply, result
        assert result["statusCode"] < 500, result
        text = result["body"]
        if result.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return result["statusCode"], json.loads(text)


def _function(deployment: Deployment, stack_key: str, spec: resources.FunctionSpec) -> str:
    return deployment.physical_id(stack_key, spec.logical_id + "Function", "AWS::Lambda::Function")


@pytest.fixture(scope="module")
def api(deployment: Deployment) -> Api:
    name = _function(deployment, "api", resources.MANAGEMENT_API)
    # The admin token is made as `certplane dev` makes it (CredentialStore.create_token),
    # by a process holding the deployed function's environment: same table, same code.
    token = subprocess.run(
        [
            sys.executable,
            "-c",
            "from certplane.auth import CredentialStore; "
            f"print(CredentialStore().create_token({TENANT!r}, 'deploy-smoke-admin'))",
        ],
        env=deployment.account.function_environment(name),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Api(deployment, name, token)


@dataclass
class BusTap:
    """An SQS queue behind a rule on the deployed bus: what a connector would receive."""

    sqs: Any
    queue_url: str

    def wait_for(self, detail_type: str, certificate_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        seen = []
        while time.monotonic() < deadline:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in messages:
                event = json.loads(message["Body"])
                seen.append((event["detail-type"], event["detail"]))
                summary = event["detail"].get("certificate", {})
                if (event["detail-type"], summary.get("certificateId")) == (
                    detail_type,
                    certificate_id,
                ):
                    validate_detail(detail_type, event["detail"])  # the published schema
                    return event
        raise AssertionError(f"no {detail_type!r} for {certificate_id} on the bus; saw {seen}")


@pytest.fixture(scope="module")
def bus_tap(deployment: Deployment, api: Api) -> BusTap:
    bus = deployment.account.function_environment(api.function_name)[resources.EVENT_BUS.env_var]
    sqs = deployment.account.client("sqs")
    events = deployment.account.client("events")
    queue_url = sqs.create_queue(QueueName="deploy-smoke-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="deploy-smoke-tap",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [resources.EVENT_BUS.source]}),
    )
    events.put_targets(
        Rule="deploy-smoke-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": queue_arn}]
    )
    return BusTap(sqs, queue_url)


def test_every_stack_deploys_with_its_key_resources(deployment: Deployment) -> None:
    print(deployment.report())  # shown with -rP, and with any failure below
    assert deployment.statuses == dict.fromkeys(deployment.synth.order, "CREATE_COMPLETE")
    assert set(deployment.synth.stacks.values()) == set(deployment.synth.order)
    for stack, skipped in deployment.skipped.items():
        unexpected = {i: t for i, t in skipped.items() if t not in MOTO_SKIPPED_TYPES}
        assert not unexpected, f"{stack}: moto did not create {unexpected}"
        assert not set(skipped.values()) & set(CORE_TYPES)

    dynamodb = deployment.account.client("dynamodb")
    for spec in resources.TABLES:
        name = deployment.physical_id("inventory", spec.logical_id, "AWS::DynamoDB::Table")
        table = dynamodb.describe_table(TableName=name)["Table"]
        expected = spec.create_table_kwargs(name)
        assert table["KeySchema"] == expected["KeySchema"]
        indexes = {i["IndexName"]: i["KeySchema"] for i in table.get("GlobalSecondaryIndexes", [])}
        assert indexes == {
            i["IndexName"]: i["KeySchema"] for i in expected.get("GlobalSecondaryIndexes", [])
        }

    bus = deployment.physical_id("events", resources.EVENT_BUS.logical_id, "AWS::Events::EventBus")
    assert deployment.account.client("events").describe_event_bus(Name=bus)["Name"] == bus

    tables = {
        spec.env_var: deployment.physical_id("inventory", spec.logical_id, "AWS::DynamoDB::Table")
        for spec in resources.TABLES
    }
    lambda_client = deployment.account.client("lambda")
    functions = _deployed(deployment, "AWS::Lambda::Function")
    assert len(functions) >= len(resources.FUNCTIONS + resources.STATUS_FUNCTIONS)
    for stack, logical_id, name in functions:
        config = lambda_client.get_function_configuration(FunctionName=name)
        # The handler the runtime will import exists in the code package the template names.
        code = json.loads(deployment.synth.templates[stack].read_text())["Resources"][logical_id]
        asset = deployment.synth.outdir / f"asset.{code['Properties']['Code']['S3Key'][:-4]}"
        module = config["Handler"].rpartition(".")[0].replace(".", "/")
        assert (asset / f"{module}.py").is_file(), (name, config["Handler"])
        environment = config["Environment"]["Variables"]
        assert environment[resources.CONFIG_ENV] == PATH_IN_LAMBDA, name
        assert environment[resources.EVENT_BUS.env_var] == bus, name
        named = {k: v for k, v in environment.items() if k in tables}
        assert named == {k: tables[k] for k in named} and named, name
        assert config.get("Layers"), f"{name} has no layers (the configuration layer)"

    sfn = deployment.account.client("stepfunctions")
    for _stack, _logical_id, arn in _deployed(deployment, "AWS::StepFunctions::StateMachine"):
        definition = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition, f"{arn}: unsubstituted placeholders"


def _deployed(deployment: Deployment, resource_type: str) -> list[tuple[str, str, str]]:
    """(stack, logical id, physical id) of every deployed resource of a type."""
    return [
        (stack, logical_id, summary["PhysicalResourceId"])
        for stack, summaries in deployment.resources.items()
        for logical_id, summary in summaries.items()
        if summary["ResourceType"] == resource_type
    ]


def _csr(folder: Path, common_name: str) -> str:
    key, csr = folder / f"{common_name}.key", folder / f"{common_name}.csr"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        check=True,
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(key),
            "-subj",
            f"/CN={common_name}",
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    return csr.read_text()


def test_issuance_through_the_deployed_api(
    api: Api, bus_tap: BusTap, ca_dir: Path, tmp_path: Path
) -> None:
    status, issued = api.call(
        "POST",
        "/v1/certificates",
        {"csr": _csr(tmp_path, "smoke-meter-1"), "profile": "device", "device_id": "smoke-1"},
    )
    assert status == 201, issued
    assert issued["status"] == "ISSUED"

    leaf, chain = tmp_path / "leaf.pem", tmp_path / "chain.pem"
    leaf.write_text(issued["certificate_pem"])
    chain.write_text(issued["chain_pem"])
    # Trusted: the root the test created, not whatever the function returned.
    root = ca_dir / Settings.load().profiles_by_name["device"].route[0] / "root.pem"
    command = ["openssl", "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(chain)]
    verified = subprocess.run(
        [*command, str(leaf)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    status, fetched = api.call("GET", f"/v1/certificates/{issued['certificate_id']}")
    assert status == 200
    assert fetched["serial"] == issued["serial"]
    assert fetched["certificate_pem"] == issued["certificate_pem"]

    event = bus_tap.wait_for("Certificate Issued", issued["certificate_id"])
    assert event["source"] == resources.EVENT_BUS.source
    assert event["detail"]["tenant"] == TENANT


def test_renewal_sweep_through_the_deployed_state_machine(
    deployment: Deployment, api: Api, bus_tap: BusTap, tmp_path: Path
) -> None:
    if "workflows" not in deployment.synth.stacks:
        pytest.skip("build_app has no workflows stack yet: no renewal sweep state machine")
    profile = Settings.load().profiles_by_name["device"]
    assert not profile.auto_renew, "the default device profile is expected to notify, not renew"
    status, due = api.call(
        "POST",
        "/v1/certificates",
        {"csr": _csr(tmp_path, "smoke-meter-2"), "profile": "device", "validity_days": 5},
    )
    assert status == 201, due

    machine = deployment.physical_id(
        "workflows", SWEEP_LOGICAL_ID, "AWS::StepFunctions::StateMachine"
    )
    sfn = deployment.account.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({}))["executionArn"]
    deadline = time.monotonic() + SWEEP_WAIT_SECONDS
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.5)
    history = sfn.get_execution_history(executionArn=execution, reverseOrder=True)["events"]
    assert described["status"] == "SUCCEEDED", history[:3]
    summary = json.loads(described["output"])
    assert summary["tenants"] == [TENANT]
    # Only the 5-day certificate is within a notice threshold (the other one has 365 days).
    assert summary["counts"]["expiring"] == 1 and summary["counts"]["renewed"] == 0

    event = bus_tap.wait_for("Certificate Expiring", due["certificate_id"])
    assert event["detail"]["threshold"] == min(
        days for days in Settings.load().workflows.expiring_thresholds_days if days >= 5
    )
    assert event["detail"]["daysRemaining"] == 4  # 5 days from issuance, less the backdate
    status, record = api.call("GET", f"/v1/certificates/{due['certificate_id']}")
    assert status == 200 and record["status"] == "ISSUED"
