"""The Step Functions workflows, as deployed: each definition is taken from the synthesized
CertplaneWorkflows template and executed by moto, whose Lambda runs the real step handlers in
process (certplane.dev.workflows). Results are checked on what the workflows leave behind:
inventory records, events (validated against the schemas by the tap), CRLs in the status
bucket, certificates verified by openssl.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from moto import mock_aws

from app import build_app, create_app
from cdk.state_machine import logical_id_of
from certplane.dev import workflows as dev_workflows
from certplane.dev.aws import MOTO_CONFIG
from certplane.dev.lambda_host import LambdaHost
from certplane.errors import Conflict, NotFound, RequestRejected
from certplane.inventory import CertificateRecord
from certplane.lifecycle import IssueRequest, Lifecycle, RenewRequest
from certplane.model import format_serial
from certplane.resources import (
    APPROVAL_WORKFLOW,
    BULK_WORKFLOW,
    CA_DIR_ENV,
    CONFIG_ENV,
    DEV_EVENT_TAP,
    EVENT_BUS,
    STATE_MACHINES,
    STATUS_BUCKET,
    TABLES,
    WORKFLOW_FUNCTIONS,
)
from certplane.status.store import StatusStore
from certplane.status.urls import STATUS_URL_ENV, crl_shard, shard_key
from certplane.workflows import steps
from certplane.workflows.approval import Approvals
from certplane.workflows.bulk import BulkOperations, bulk_view
from certplane.workflows.control import WorkflowControl
from tests.conftest import AwsStack, EventTap, build_csr, csr_pem, new_key

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
EXECUTION_TIMEOUT_SECONDS = 120
CONFIG = """
expiry_shards = 2

[status]
crl_shards = 2

[workflows]
expiring_thresholds_days = [30, 14, 7, 1]
retry_interval_seconds = 1
retry_max_attempts = 1
sweep_page_size = 2
bulk_page_size = 2
bulk_max_concurrency = 2
approval_timeout_seconds = 60

[[tenants]]
id = "default"
profiles = ["device", "fleet", "gated", "pqc"]

[[tenants]]
id = "other"
profiles = ["device"]

[[cas]]
id = "local-dev"
engine = "local"

[[cas]]
id = "local-pqc"
engine = "local"

[cas.options]
algorithm = "ML-DSA-65"

[[profiles]]
name = "device"
max_validity_days = 365
default_validity_days = 90
route = ["local-dev"]

[[profiles]]
name = "fleet"
auto_renew = true
renew_before_days = 10
max_validity_days = 365
default_validity_days = 90
route = ["local-dev"]

[[profiles]]
name = "gated"
requires_approval = true
max_validity_days = 365
default_validity_days = 30
route = ["local-dev"]

[[profiles]]
name = "pqc"
key_algorithms = ["ML-DSA-65", "P-256"]
max_validity_days = 365
default_validity_days = 30
route = ["local-pqc"]
"""


# -- the synthesized definitions ---------------------------------------------------------


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "certplane.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, config_path: Path) -> dict[str, Any]:
    app = create_app(
        outdir=str(tmp_path_factory.mktemp("cdk.out")), context={"config": str(config_path)}
    )
    stacks = build_app(app)
    return app.synth().get_stack_by_name(stacks["workflows"].stack_name).template


@pytest.fixture(scope="module")
def definitions(template: dict[str, Any]) -> dict[str, str]:
    """Each machine's DefinitionString, with `${Function}` placeholders still in it."""
    found = {}
    for spec in STATE_MACHINES:
        properties = template["Resources"][logical_id_of(spec)]["Properties"]
        assert set(properties["DefinitionSubstitutions"]) == {f.logical_id for f in spec.functions}
        found[spec.logical_id] = properties["DefinitionString"]
    return found


# -- moto with the real handlers ----------------------------------------------------------


@dataclass
class Workflows:
    sfn: Any
    machines: dict[str, str]
    events: EventTap
    lifecycle: Lifecycle
    s3: Any

    def run(self, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
        arn = self.start(machine, payload)
        return self.wait(arn)

    def start(self, machine: str, payload: dict[str, Any]) -> str:
        # Named: moto names every unnamed execution "None" (a second start would clash).
        return self.sfn.start_execution(
            stateMachineArn=self.machines[machine], name=uuid.uuid4().hex, input=json.dumps(payload)
        )["executionArn"]

    def wait(self, execution_arn: str, status: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING" or status == "RUNNING":
                return described
            time.sleep(0.05)
        raise AssertionError(f"{execution_arn} still running")

    def issue(
        self, profile: str = "device", days: int | None = None, name: str = "dev-1", key=None
    ):
        return self.lifecycle.issue(
            IssueRequest(
                tenant="default",
                profile=profile,
                csr=csr_pem(key or new_key("P-256"), name),
                requester="tests",
                validity_days=days,
            )
        )


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ca")


@pytest.fixture
def workflows(
    monkeypatch: pytest.MonkeyPatch,
    config_path: Path,
    ca_dir: Path,
    definitions: dict[str, str],
    boto_session: boto3.Session,
) -> Iterator[Workflows]:
    monkeypatch.setenv(CONFIG_ENV, str(config_path))
    monkeypatch.setenv(CA_DIR_ENV, str(ca_dir))
    monkeypatch.setenv(STATUS_URL_ENV, "http://status.certplane.test")
    with mock_aws(config=MOTO_CONFIG):
        dynamodb = boto_session.client("dynamodb")
        for spec in TABLES:
            dynamodb.create_table(**spec.create_table_kwargs())
        s3 = boto_session.client("s3")
        s3.create_bucket(Bucket=STATUS_BUCKET.default_name)
        events = boto_session.client("events")
        events.create_event_bus(Name=EVENT_BUS.default_name)
        sqs = boto_session.client("sqs")
        queue_url = sqs.create_queue(QueueName=DEV_EVENT_TAP.queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name=DEV_EVENT_TAP.name,
            EventBusName=EVENT_BUS.default_name,
            EventPattern=json.dumps(DEV_EVENT_TAP.pattern),
        )
        events.put_targets(
            Rule=DEV_EVENT_TAP.name,
            EventBusName=EVENT_BUS.default_name,
            Targets=[{"Id": "tap", "Arn": queue_arn}],
        )
        host = LambdaHost(ACCOUNT_ID, REGION)
        undo = dev_workflows.serve_handlers_in_process(host.invoke, WORKFLOW_FUNCTIONS)
        try:
            iam = boto_session.client("iam")
            functions = dev_workflows.create_functions(
                boto_session.client("lambda"), iam, WORKFLOW_FUNCTIONS
            )
            sfn = boto_session.client("stepfunctions")
            machines = dev_workflows.create_state_machines(
                sfn, iam, STATE_MACHINES, definitions, functions
            )
            tap = EventTap(
                AwsStack(dynamodb, events, sqs, EVENT_BUS.default_name, queue_url, boto_session)
            )
            yield Workflows(sfn, machines, tap, steps.runtime().lifecycle, s3)
            _settle(sfn)
        finally:
            undo()


def _settle(sfn: Any) -> None:
    """Let every execution a test left running end inside the mock (never against AWS)."""
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    for machine in sfn.list_state_machines()["stateMachines"]:
        for execution in sfn.list_executions(
            stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
        )["executions"]:
            arn = execution["executionArn"]
            if "ApprovalIssuance" in arn or "approval" in machine["name"]:
                sfn.stop_execution(executionArn=arn)  # waits for a person: stop it
            while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                assert time.monotonic() < deadline, f"{arn} still running"
                time.sleep(0.05)


def _types(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [detail_type for detail_type, _ in events]


def _record(serial: str) -> CertificateRecord:
    return CertificateRecord.get(f"default#{serial}", consistent_read=True)


# -- renewal sweep ----------------------------------------------------------------------


def test_renewal_sweep_announces_each_threshold_once_renews_and_expires(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_threshold = {
        threshold: workflows.issue(days=days, name=f"dev-{days}").serial
        for threshold, days in ((30, 30), (14, 14), (7, 7), (1, 2))
    }
    expiring_soon = workflows.issue(days=1, name="dev-expired").serial
    auto = workflows.issue(profile="fleet", days=5, name="fleet-1").serial
    far = workflows.issue(days=200, name="dev-far").serial
    workflows.events()
    # The sweep runs a day and an hour later: 29d/13d/6d/0d remain, one has expired.
    later = steps.utc_now() + datetime.timedelta(days=1, hours=1)
    monkeypatch.setattr(steps, "utc_now", lambda: later)

    execution = workflows.run("RenewalSweep", {})
    assert execution["status"] == "SUCCEEDED", execution
    counts = json.loads(execution["output"])["counts"]
    assert counts["expiring"] == 4 and counts["expired"] == 1 and counts["renewed"] == 1

    events = workflows.events()
    expiring = {
        detail["certificate"]["serial"]: detail
        for detail_type, detail in events
        if detail_type == "Certificate Expiring"
    }
    assert {serial: d["threshold"] for serial, d in expiring.items()} == {
        serial: threshold for threshold, serial in by_threshold.items()
    }
    assert {d["daysRemaining"] for d in expiring.values()} == {28, 12, 5, 0}
    expired = [d for t, d in events if t == "Certificate Expired"]
    assert [d["certificate"]["serial"] for d in expired] == [expiring_soon]
    assert expired[0]["certificate"]["status"] == "EXPIRED"
    assert _record(expiring_soon).status == "EXPIRED"
    renewed = [d for t, d in events if t == "Certificate Renewed"]
    assert [d["previousCertificate"]["serial"] for d in renewed] == [auto]
    assert _record(auto).status == "SUPERSEDED"
    new = _record(renewed[0]["certificate"]["serial"])
    assert new.status == "ISSUED" and renewed[0]["sameKey"] is True
    assert _record(far).status == "ISSUED"

    again = workflows.run("RenewalSweep", {})
    assert again["status"] == "SUCCEEDED"
    assert _types(workflows.events()) == []  # every (certificate, threshold) announced once


def test_renewal_sweep_of_named_tenants_only(workflows: Workflows, monkeypatch) -> None:
    workflows.issue(days=3)
    workflows.events()
    execution = workflows.run("RenewalSweep", {"tenants": ["other"]})
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["tenants"] == ["other"]
    assert _types(workflows.events()) == []


# -- revocation ---------------------------------------------------------------------------


def test_revocation_workflow_publishes_the_crl_listing_the_serial(workflows: Workflows) -> None:
    record = workflows.issue(name="dev-revoked")
    execution = workflows.run(
        "Revocation",
        {"tenant": "default", "reference": record.serial, "reason": "keyCompromise"},
    )
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    shard = crl_shard(int(record.serial, 16), 2)
    assert output["crl"]["shard"] == shard
    found = StatusStore(client=workflows.s3).get(shard_key("local-dev", shard))
    assert found is not None
    crl = x509.load_der_x509_crl(found[0])
    issuer = workflows.lifecycle.router.engine("local-dev").chain()[0]
    assert crl.is_signature_valid(issuer.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(int(record.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert _record(record.serial).status == "REVOKED"
    assert "Certificate Revoked" in _types(workflows.events())
    listed = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-text"],
        input=found[0],
        capture_output=True,
        check=True,
    ).stdout.decode()
    # openssl prints the serial in upper-case hex, padded to whole octets
    assert re.search(rf"Serial Number: 0?{int(record.serial, 16):X}\n", listed), listed


def test_revocation_workflow_fails_for_a_certificate_already_revoked(workflows: Workflows) -> None:
    record = workflows.issue(name="dev-twice")
    payload = {"tenant": "default", "reference": record.serial, "reason": "superseded"}
    assert workflows.run("Revocation", payload)["status"] == "SUCCEEDED"
    second = workflows.run("Revocation", payload)
    assert second["status"] == "FAILED"
    assert second.get("error") == "RevocationRefused"


# -- approval-gated issuance --------------------------------------------------------------


def _approvals(workflows: Workflows) -> Approvals:
    control = WorkflowControl(
        workflows.sfn, {APPROVAL_WORKFLOW.env_var: workflows.machines["ApprovalIssuance"]}
    )
    return Approvals(workflows.lifecycle, control)


def _submitted(workflows: Workflows, approvals: Approvals, name: str = "gated-1"):
    item = approvals.submit(
        IssueRequest(
            tenant="default",
            profile="gated",
            csr=csr_pem(new_key("P-256"), name),
            requester="alice",
            device_id=name,
        )
    )
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while not approvals.get("default", item.item_id).task_token:  # the workflow is waiting
        assert time.monotonic() < deadline, "the approval workflow never waited"
        time.sleep(0.05)
    return item


def test_approved_request_is_issued_and_verifies(workflows: Workflows, tmp_path: Path) -> None:
    approvals = _approvals(workflows)
    item = _submitted(workflows, approvals)
    assert [a.item_id for a in approvals.list("default")] == [item.item_id]
    assert workflows.wait(item.execution_arn, "RUNNING")["status"] == "RUNNING"

    approvals.decide("default", item.item_id, "approve", "bob", None)
    execution = workflows.wait(item.execution_arn)
    assert execution["status"] == "SUCCEEDED", execution
    approved = approvals.get("default", item.item_id)
    assert approved.status == "ISSUED" and approved.decided_by == "bob"
    assert approvals.list("default") == []
    record = _record(approved.serial)
    assert record.status == "ISSUED" and record.requester == "alice"
    leaf, chain = tmp_path / "leaf.pem", tmp_path / "chain.pem"
    leaf.write_text(record.certificate_pem)
    chain.write_text(record.chain_pem)
    root = tmp_path / "root.pem"
    root.write_text(
        x509.load_pem_x509_certificates(record.chain_pem.encode())[-1]
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Certificate Issued" in _types(workflows.events())


def test_denied_request_fails_with_an_event(workflows: Workflows) -> None:
    approvals = _approvals(workflows)
    item = _submitted(workflows, approvals, "gated-2")
    workflows.events()
    with pytest.raises(NotFound):
        approvals.get("other", item.item_id)  # another tenant cannot see or decide it
    approvals.decide("default", item.item_id, "deny", "bob", "unknown device")
    execution = workflows.wait(item.execution_arn)
    assert execution["status"] == "FAILED" and execution.get("error") == "Denied"
    denied = approvals.get("default", item.item_id)
    assert denied.status == "FAILED"
    assert denied.failure == {"code": "approval_denied", "message": "unknown device"}
    failures = [d for t, d in workflows.events() if t == "Certificate Issuance Failed"]
    assert [f["failure"]["code"] for f in failures] == ["approval_denied"]
    assert failures[0]["request"]["deviceId"] == "gated-2"
    with pytest.raises(Conflict):
        approvals.decide("default", item.item_id, "approve", "carol", None)


# -- bulk operations ----------------------------------------------------------------------


def _bulk(workflows: Workflows, lifecycle: Lifecycle | None = None) -> BulkOperations:
    control = WorkflowControl(
        workflows.sfn, {BULK_WORKFLOW.env_var: workflows.machines["BulkOperation"]}
    )
    return BulkOperations(lifecycle or workflows.lifecycle, control)


def test_bulk_revoke_of_a_ca_revokes_every_certificate_with_progress(
    workflows: Workflows,
) -> None:
    serials = [workflows.issue(name=f"bulk-{i}").serial for i in range(5)]
    renewed = workflows.lifecycle.renew(
        RenewRequest(tenant="default", reference=serials[0], requester="tests")
    )
    untouched = workflows.issue(profile="pqc", name="pq-1").serial
    bulk = _bulk(workflows)
    operation = bulk.start("default", "tests", "revoke", {"ca": "local-dev"}, "cACompromise")
    execution = workflows.wait(operation.execution_arn)
    assert execution["status"] == "SUCCEEDED", execution
    progress = bulk_view(bulk.get("default", operation.item_id))
    # 5 issued + the renewal; the renewed one (SUPERSEDED, still valid) is revoked too.
    assert progress["progress"] == "6/6" and progress["failed"] == 0
    assert progress["status"] == "COMPLETED" and progress["selection_complete"]
    for serial in [*serials, renewed.serial]:
        record = _record(serial)
        assert record.status == "REVOKED" and record.revocation_reason == "cACompromise"
    assert _record(untouched).status == "ISSUED"
    revoked = [d for t, d in workflows.events() if t == "Certificate Revoked"]
    assert len(revoked) == 6


def test_bulk_reissue_after_moving_a_profile_to_ml_dsa(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = [new_key("P-256") for _ in range(3)]
    before = [workflows.issue(name=f"move-{i}", key=key) for i, key in enumerate(keys)]
    moved = tmp_path / "moved.toml"
    moved.write_text(
        CONFIG.replace(
            'default_validity_days = 90\nroute = ["local-dev"]\n\n[[profiles]]\nname = "fleet"',
            'default_validity_days = 90\nroute = ["local-pqc"]\nsignature_algorithm = "ML-DSA-65"'
            '\n\n[[profiles]]\nname = "fleet"',
        )
    )
    assert moved.read_text() != CONFIG
    monkeypatch.setenv(CONFIG_ENV, str(moved))
    lifecycle = steps.runtime().lifecycle
    assert lifecycle.settings.profiles_by_name["device"].route == ["local-pqc"]

    bulk = _bulk(workflows, lifecycle)
    operation = bulk.start("default", "tests", "reissue", {"profile": "device"})
    execution = workflows.wait(operation.execution_arn)
    assert execution["status"] == "SUCCEEDED", execution
    assert bulk_view(bulk.get("default", operation.item_id))["progress"] == "3/3"
    pqc_issuer = lifecycle.router.engine("local-pqc").chain()[0]
    for old, key in zip(before, keys, strict=True):
        previous = _record(old.serial)
        assert previous.status == "SUPERSEDED"
        new = _record(previous.superseded_by.rsplit("#", 1)[1])
        assert new.status == "ISSUED" and new.ca_id == "local-pqc"
        certificate = x509.load_pem_x509_certificate(new.certificate_pem.encode())
        assert certificate.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.18"
        certificate.verify_directly_issued_by(pqc_issuer)  # ML-DSA-65 signature checks out
        assert certificate.public_key() == key.public_key()  # same device key


def test_bulk_refuses_a_ca_the_tenant_does_not_use(workflows: Workflows) -> None:
    with pytest.raises(RequestRejected):
        _bulk(workflows).start("other", "tests", "revoke", {"ca": "local-pqc"}, "keyCompromise")


def test_est_enrollment_waits_for_approval_then_the_repeat_gets_the_certificate(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 7030 §4.2.3: 202 + Retry-After, the same request repeated later gets the cert."""
    from certplane.enroll.est.door import EstDoor
    from certplane.runtime import Runtime
    from tests.service.test_est import PASSWORD, USER, EstClient, b64

    monkeypatch.setenv(APPROVAL_WORKFLOW.env_var, workflows.machines["ApprovalIssuance"])
    runtime = steps.runtime()
    runtime.credentials.set_password("default", USER, PASSWORD)
    client = EstClient(EstDoor(Runtime(runtime.settings, runtime.lifecycle, runtime.credentials)))
    key = new_key("P-256")
    request = build_csr(key, "est-gated").public_bytes(serialization.Encoding.DER)

    first = client.post(b64(request), "gated/simpleenroll")
    assert first.status == 202 and int(first.headers["Retry-After"]) > 0
    again = client.post(b64(request), "gated/simpleenroll")
    assert again.status == 202
    approvals = _approvals(workflows)
    (pending,) = approvals.list("default")  # one approval for the request and its repeat
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while not approvals.get("default", pending.item_id).task_token:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    approvals.decide("default", pending.item_id, "approve", "bob", None)
    assert workflows.wait(pending.execution_arn)["status"] == "SUCCEEDED"

    issued = client.post(b64(request), "gated/simpleenroll")
    assert issued.status == 200, issued.body
    (certificate,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(issued.body))
    assert certificate.public_key() == key.public_key()
    assert _record(format_serial(certificate.serial_number)).status == "ISSUED"

    other = build_csr(new_key("P-256"), "est-denied").public_bytes(serialization.Encoding.DER)
    assert client.post(b64(other), "gated/simpleenroll").status == 202
    (second,) = approvals.list("default")
    while not approvals.get("default", second.item_id).task_token:
        time.sleep(0.05)
    approvals.decide("default", second.item_id, "deny", "bob", "not ours")
    assert workflows.wait(second.execution_arn)["status"] == "FAILED"
    refused = client.post(b64(other), "gated/simpleenroll")
    assert refused.status == 400 and "approval_denied" in refused.body


# -- the management API's workflow routes -------------------------------------------------


def test_management_api_workflow_routes(
    workflows: Workflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approvals, bulk and sweeps through the API handler: tenant-scoped, refusals are 4xx."""
    from certplane.api import ManagementApi
    from tests.service.test_management_api import Client

    for spec in STATE_MACHINES:
        monkeypatch.setenv(spec.env_var, workflows.machines[spec.logical_id])
    runtime = steps.runtime()
    client = Client(ManagementApi(runtime), runtime.credentials.create_token("default", "alice"))
    outsider = Client(ManagementApi(runtime), runtime.credentials.create_token("other", "eve"))

    status, body = client.call(
        "POST", "/v1/certificates", {"csr": csr_pem(new_key("P-256"), "api-1"), "profile": "gated"}
    )
    assert status == 202 and body["approval"]["status"] == "PENDING"
    approval_id = body["approval"]["id"]
    assert [a["id"] for a in client.call("GET", "/v1/approvals")[1]["items"]] == [approval_id]
    assert outsider.call("GET", f"/v1/approvals/{approval_id}")[0] == 404
    assert outsider.call("POST", f"/v1/approvals/{approval_id}", {"decision": "approve"})[0] == 404
    assert client.call("POST", f"/v1/approvals/{approval_id}", {"decision": "maybe"})[0] == 422
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while True:  # 409 until the workflow waits with its token
        status, body = client.call("POST", f"/v1/approvals/{approval_id}", {"decision": "approve"})
        if status != 409:
            break
        assert body["error"]["code"] == "not_ready" and time.monotonic() < deadline
        time.sleep(0.05)
    assert status == 200 and body["decided_by"] == "alice"
    execution = f"approval-{approval_id}"
    workflows.wait(
        workflows.machines["ApprovalIssuance"].replace(":stateMachine:", ":execution:")
        + f":{execution}"
    )
    status, body = client.call("GET", f"/v1/approvals/{approval_id}")
    assert body["status"] == "ISSUED" and body["serial"]

    assert (
        client.call("POST", "/v1/bulk", {"action": "revoke", "ca": "x", "profile": "y"})[0] == 400
    )
    assert client.call("POST", "/v1/bulk", {"action": "burn", "ca": "local-dev"})[0] == 422
    assert client.call("POST", "/v1/bulk", {"action": "revoke", "ca": "nope"})[0] == 400
    status, operation = client.call(
        "POST", "/v1/bulk", {"action": "revoke", "devices": ["api-1"], "reason": "superseded"}
    )
    assert status == 202
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while operation["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        operation = client.call("GET", f"/v1/bulk/{operation['id']}")[1]
    assert operation["progress"] == "1/1" and operation["done"] == 1
    assert outsider.call("GET", f"/v1/bulk/{operation['id']}")[0] == 404
    assert [o["id"] for o in client.call("GET", "/v1/bulk")[1]["items"]] == [operation["id"]]

    revoked = workflows.issue(name="api-revoked")
    status, revocation = client.call(
        "POST", "/v1/revocations", {"reference": revoked.serial, "reason": "keyCompromise"}
    )
    assert status == 202 and revocation["name"].startswith("revocation-default-")
    deadline = time.monotonic() + EXECUTION_TIMEOUT_SECONDS
    while revocation["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        revocation = client.call("GET", f"/v1/revocations/{revocation['name']}")[1]
    assert revocation["status"] == "SUCCEEDED" and revocation["output"]["serial"] == revoked.serial
    assert _record(revoked.serial).status == "REVOKED"
    assert outsider.call("POST", "/v1/revocations", {"reference": revoked.serial})[0] == 404
    assert outsider.call("GET", f"/v1/revocations/{revocation['name']}")[0] == 404
    assert client.call("POST", "/v1/revocations", {"reference": "zz"})[0] == 400
    bad_reason = {"reference": revoked.serial, "reason": "bored"}
    assert client.call("POST", "/v1/revocations", bad_reason)[0] == 400

    status, sweep = client.call("POST", "/v1/sweeps")
    assert status == 202 and sweep["name"].startswith("sweep-default-")
    assert outsider.call("GET", f"/v1/sweeps/{sweep['name']}")[0] == 404
    assert client.call("GET", "/v1/sweeps/sweep-default-unknown")[0] == 404


def test_undecided_request_times_out_and_fails(workflows: Workflows, config_path: Path) -> None:
    """`approval_timeout_seconds` (1 s here; the template's machine waits a minute)."""
    from certplane.config import Settings

    settings = Settings.load(config_path).workflows.model_copy(
        update={"approval_timeout_seconds": 1}
    )
    text = APPROVAL_WORKFLOW.definition_text(settings)
    function = workflows.sfn.describe_state_machine(
        stateMachineArn=workflows.machines["ApprovalIssuance"]
    )["definition"]
    arn = json.loads(function)["States"]["AwaitDecision"]["Parameters"]["FunctionName"]
    machine = workflows.sfn.create_state_machine(
        name="approval-short-timeout",
        definition=text.replace("${ApprovalSteps}", arn),
        roleArn=workflows.sfn.describe_state_machine(
            stateMachineArn=workflows.machines["ApprovalIssuance"]
        )["roleArn"],
    )["stateMachineArn"]
    control = WorkflowControl(workflows.sfn, {APPROVAL_WORKFLOW.env_var: machine})
    approvals = Approvals(workflows.lifecycle, control)
    workflows.events()
    item = approvals.submit(  # the timeout may strike before the token is even stored
        IssueRequest(
            tenant="default",
            profile="gated",
            csr=csr_pem(new_key("P-256"), "gated-late"),
            requester="alice",
            device_id="gated-late",
        )
    )
    execution = workflows.wait(item.execution_arn)
    assert execution["status"] == "FAILED" and execution.get("error") == "Denied"
    late = approvals.get("default", item.item_id)
    assert late.status == "FAILED" and late.failure["code"] == "approval_timed_out"
    failures = [d for t, d in workflows.events() if t == "Certificate Issuance Failed"]
    assert [f["failure"]["code"] for f in failures] == ["approval_timed_out"]
    with pytest.raises(Conflict):
        approvals.decide("default", item.item_id, "approve", "bob", None)
