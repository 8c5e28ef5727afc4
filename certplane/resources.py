"""The one source of truth for AWS resources: tables, bus, rules and Lambda handlers.

The CDK stacks and `certplane dev` both build from these specs, so the laptop and the account
hold the same tables (derived from the pynamodb models), the same bus and the same handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pynamodb.models import Model

from certplane.auth.credentials import PRINCIPALS_TABLE_DEFAULT, PRINCIPALS_TABLE_ENV, Credential
from certplane.events import EVENT_BUS_DEFAULT, EVENT_BUS_ENV, SOURCE
from certplane.inventory.models import (
    INVENTORY_TABLE_DEFAULT,
    INVENTORY_TABLE_ENV,
    CertificateRecord,
)
from certplane.status.state import STATUS_TABLE_DEFAULT, STATUS_TABLE_ENV, StatusState
from certplane.status.store import STATUS_BUCKET_DEFAULT, STATUS_BUCKET_ENV
from certplane.workflows.store import WORKFLOWS_TABLE_DEFAULT, WORKFLOWS_TABLE_ENV, WorkflowItem

IDEMPOTENCY_TABLE_ENV = "CERTPLANE_IDEMPOTENCY_TABLE"
CONFIG_ENV = "CERTPLANE_CONFIG"
CA_DIR_ENV = "CERTPLANE_CA_DIR"


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str = "S"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: KeySpec
    sort_key: KeySpec | None
    projection: str


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: keys, global indexes, TTL, and the env var that carries its name."""

    logical_id: str
    default_name: str
    env_var: str
    partition_key: KeySpec
    sort_key: KeySpec | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None

    def create_table_kwargs(self, name: str | None = None) -> dict[str, Any]:
        """Arguments for boto3 `create_table` (on-demand), as `certplane dev` uses them."""
        keys = [self.partition_key, self.sort_key] + [
            key for index in self.indexes for key in (index.partition_key, index.sort_key)
        ]
        definitions = {key.name: key.type for key in keys if key is not None}
        kwargs: dict[str, Any] = {
            "TableName": name or self.default_name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": n, "AttributeType": t} for n, t in definitions.items()
            ],
            "KeySchema": _key_schema(self.partition_key, self.sort_key),
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index.name,
                    "KeySchema": _key_schema(index.partition_key, index.sort_key),
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in self.indexes
            ]
        return kwargs


def _key_schema(partition: KeySpec, sort: KeySpec | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


def _keys(
    key_schema: list[dict[str, str]], types: dict[str, str]
) -> tuple[KeySpec, KeySpec | None]:
    by_role = {entry["KeyType"]: entry["AttributeName"] for entry in key_schema}
    sort = by_role.get("RANGE")
    return (
        KeySpec(by_role["HASH"], types[by_role["HASH"]]),
        KeySpec(sort, types[sort]) if sort else None,
    )


def table_from_model(
    logical_id: str, model: type[Model], env_var: str, default_name: str, ttl: str | None = None
) -> TableSpec:
    """Derive a table spec from a pynamodb model so the code and the table cannot drift."""
    schema = model._get_schema()
    types = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    partition, sort = _keys(schema["key_schema"], types)
    indexes = tuple(
        IndexSpec(
            index["index_name"],
            *_keys(index["key_schema"], types),
            index["projection"]["ProjectionType"],
        )
        for index in schema["global_secondary_indexes"]
    )
    return TableSpec(logical_id, default_name, env_var, partition, sort, indexes, ttl)


INVENTORY = table_from_model(
    "Inventory", CertificateRecord, INVENTORY_TABLE_ENV, INVENTORY_TABLE_DEFAULT, ttl="expire_at"
)
PRINCIPALS = table_from_model(
    "Principals", Credential, PRINCIPALS_TABLE_ENV, PRINCIPALS_TABLE_DEFAULT, ttl="expire_at"
)
# Shape required by the Powertools idempotency utility (partition key `id`, TTL `expiration`).
IDEMPOTENCY = TableSpec(
    "Idempotency",
    "certplane-idempotency",
    IDEMPOTENCY_TABLE_ENV,
    KeySpec("id"),
    ttl_attribute="expiration",
)
# CRL numbers and which CRLs are due (certplane.status.state); keys lead with the CA.
STATUS = table_from_model("Status", StatusState, STATUS_TABLE_ENV, STATUS_TABLE_DEFAULT)
# Approvals, bulk-operation progress and expiry-notice markers (certplane.workflows.store).
WORKFLOWS = table_from_model(
    "Workflows", WorkflowItem, WORKFLOWS_TABLE_ENV, WORKFLOWS_TABLE_DEFAULT, ttl="expire_at"
)
TABLES = (INVENTORY, PRINCIPALS, IDEMPOTENCY, STATUS, WORKFLOWS)


@dataclass(frozen=True)
class BucketSpec:
    """An S3 bucket and the env var carrying its name."""

    logical_id: str
    default_name: str
    env_var: str


# Published CRLs and CA certificates, keyed as their status URL paths (certplane.status.urls);
# CloudFront serves it over plain HTTP in AWS, `certplane dev`'s status port locally.
STATUS_BUCKET = BucketSpec("StatusBucket", STATUS_BUCKET_DEFAULT, STATUS_BUCKET_ENV)
BUCKETS = (STATUS_BUCKET,)


@dataclass(frozen=True)
class BusSpec:
    logical_id: str
    default_name: str
    env_var: str
    source: str


EVENT_BUS = BusSpec("EventBus", EVENT_BUS_DEFAULT, EVENT_BUS_ENV, SOURCE)


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: its handler by name and what it may touch (least privilege)."""

    logical_id: str
    handler: str
    description: str
    read_write_tables: tuple[TableSpec, ...] = ()
    read_tables: tuple[TableSpec, ...] = ()
    puts_events: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    path_prefixes: tuple[str, ...] = ()
    # Signs through CertBridge (issues certificates, CRLs or OCSP signer certificates): only
    # these functions get the configured CA engines' permissions (kms:Sign, acm-pca:...).
    signs: bool = False
    # Buckets whose objects it reads and writes (GetObject/PutObject only).
    read_write_buckets: tuple[BucketSpec, ...] = ()

    @property
    def tables(self) -> tuple[TableSpec, ...]:
        return self.read_write_tables + self.read_tables


MANAGEMENT_API = FunctionSpec(
    logical_id="ManagementApi",
    handler="lambdas.management_api.handler",
    description="certplane management API (issue, list, get, renew, revoke)",
    read_write_tables=(INVENTORY, IDEMPOTENCY, WORKFLOWS),  # WORKFLOWS: approvals, bulk
    read_tables=(PRINCIPALS,),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-management-api"},
    path_prefixes=("/v1/", "/health"),
    signs=True,
)
CERTIFIER_API = FunctionSpec(
    logical_id="CertifierApi",
    handler="lambdas.certifier_api.handler",
    description="xPKI Certifier-compatible enrollment API (libCertifier devices)",
    read_write_tables=(INVENTORY, IDEMPOTENCY, PRINCIPALS),  # PRINCIPALS: nonce replay cache
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-certifier-api"},
    path_prefixes=("/v1/certifier",),
    signs=True,
)
EST = FunctionSpec(
    logical_id="Est",
    handler="lambdas.est.handler",
    description="EST (RFC 7030) enrollment",
    read_write_tables=(INVENTORY, IDEMPOTENCY, WORKFLOWS),  # WORKFLOWS: approvals
    read_tables=(PRINCIPALS,),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-est"},
    path_prefixes=("/.well-known/est",),
    signs=True,
)
FUNCTIONS = (MANAGEMENT_API, CERTIFIER_API, EST)
# The status layer's functions are served on the plain-HTTP status origin, not the API: the
# OCSP responder behind CloudFront (AWS) or `certplane dev --status-port`; the CRL publisher
# runs on a schedule (EventBridge Scheduler, every minute) and has no path.
OCSP = FunctionSpec(
    logical_id="Ocsp",
    handler="lambdas.ocsp.handler",
    description="OCSP responder (RFC 6960) for the CAs whose status certplane publishes",
    read_tables=(INVENTORY,),
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-ocsp"},
    path_prefixes=("/ocsp",),
    signs=True,
)
CRL_PUBLISHER = FunctionSpec(
    logical_id="CrlPublisher",
    handler="lambdas.crl_publisher.handler",
    description="Regenerates due CRL shards and publishes them to the status bucket",
    read_write_tables=(INVENTORY, STATUS),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-crl-publisher"},
    signs=True,
    read_write_buckets=(STATUS_BUCKET,),
)
STATUS_FUNCTIONS = (OCSP, CRL_PUBLISHER)

# The workflow steps (lambdas/workflow_steps.py): one function per state machine, each step
# named in its payload. They are invoked by their state machine only and have no path.
RENEWAL_SWEEP_STEPS = FunctionSpec(
    logical_id="RenewalSweepSteps",
    handler="lambdas.workflow_steps.renewal_sweep",
    description="Renewal sweep steps: expiry notices, auto-renewal, marking expired",
    read_write_tables=(INVENTORY, IDEMPOTENCY, WORKFLOWS),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-renewal-sweep"},
    signs=True,  # auto-renewal signs
)
REVOCATION_STEPS = FunctionSpec(
    logical_id="RevocationSteps",
    handler="lambdas.workflow_steps.revocation",
    description="Revocation workflow steps: revoke, then regenerate the due CRL shards",
    read_write_tables=(INVENTORY, STATUS),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-revocation"},
    signs=True,  # CRLs are signed
    read_write_buckets=(STATUS_BUCKET,),
)
APPROVAL_STEPS = FunctionSpec(
    logical_id="ApprovalSteps",
    handler="lambdas.workflow_steps.approval",
    description="Approval-gated issuance steps: await a decision, issue or record the denial",
    read_write_tables=(INVENTORY, IDEMPOTENCY, WORKFLOWS),
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-approval"},
    signs=True,
)
BULK_STEPS = FunctionSpec(
    logical_id="BulkSteps",
    handler="lambdas.workflow_steps.bulk",
    description="Bulk operation steps: select certificates, revoke or reissue each, progress",
    read_write_tables=(INVENTORY, IDEMPOTENCY, WORKFLOWS, STATUS),  # STATUS: CRL shards due
    puts_events=True,
    environment={"POWERTOOLS_SERVICE_NAME": "certplane-bulk"},
    signs=True,
)
WORKFLOW_FUNCTIONS = (RENEWAL_SWEEP_STEPS, REVOCATION_STEPS, APPROVAL_STEPS, BULK_STEPS)


@dataclass(frozen=True)
class StateMachineSpec:
    """A Step Functions state machine: its definition builder and the functions it invokes.

    The definition is JSONPath ASL with `${<function logical id>}` placeholders for the step
    functions' ARNs: the CDK fills them with DefinitionSubstitutions, `certplane dev` with the
    ARNs of the functions it created in moto. `env_var` carries the machine's ARN to the
    management API, which starts executions and sends approval decisions.
    """

    logical_id: str
    default_name: str
    env_var: str
    functions: tuple[FunctionSpec, ...]
    build: Callable[[Any, str], dict[str, Any]]
    description: str = ""

    def definition(self, workflow_settings: Any) -> dict[str, Any]:
        """The ASL for these settings (certplane.config.WorkflowSettings)."""
        return self.build(workflow_settings, "${" + self.functions[0].logical_id + "}")

    def definition_text(self, workflow_settings: Any) -> str:
        import json

        return json.dumps(self.definition(workflow_settings), indent=1, sort_keys=True)


def _state_machines() -> tuple[StateMachineSpec, ...]:
    from certplane.workflows import definitions

    return (
        StateMachineSpec(
            "RenewalSweep",
            "certplane-renewal-sweep",
            "CERTPLANE_RENEWAL_SWEEP_ARN",
            (RENEWAL_SWEEP_STEPS,),
            definitions.renewal_sweep,
            "Daily: expiry notices, auto-renewal and expiry of every tenant's certificates",
        ),
        StateMachineSpec(
            "Revocation",
            "certplane-revocation",
            "CERTPLANE_REVOCATION_WORKFLOW_ARN",
            (REVOCATION_STEPS,),
            definitions.revocation,
            "Revoke one certificate and regenerate its CRL shard",
        ),
        StateMachineSpec(
            "ApprovalIssuance",
            "certplane-approval-issuance",
            "CERTPLANE_APPROVAL_WORKFLOW_ARN",
            (APPROVAL_STEPS,),
            definitions.approval_issuance,
            "Issue after a human approves (waitForTaskToken)",
        ),
        StateMachineSpec(
            "BulkOperation",
            "certplane-bulk-operation",
            "CERTPLANE_BULK_WORKFLOW_ARN",
            (BULK_STEPS,),
            definitions.bulk_operation,
            "Revoke or reissue every certificate of a CA, profile or device set",
        ),
    )


STATE_MACHINES = _state_machines()
RENEWAL_SWEEP, REVOCATION_WORKFLOW, APPROVAL_WORKFLOW, BULK_WORKFLOW = STATE_MACHINES


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule on the certplane bus delivering to an SQS queue."""

    name: str
    pattern: dict[str, Any]
    queue_name: str


# certplane dev keeps a copy of every event it puts on the bus (the "tap"), so a developer
# can see what connectors would receive; in AWS the bus archive plays that role.
DEV_EVENT_TAP = RuleSpec("certplane-dev-event-tap", {"source": [SOURCE]}, "certplane-dev-event-tap")


def environment(names: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables naming every table and the bus (physical names in `names`)."""
    names = names or {}
    values = {spec.env_var: names.get(spec.logical_id, spec.default_name) for spec in TABLES}
    values[EVENT_BUS.env_var] = names.get(EVENT_BUS.logical_id, EVENT_BUS.default_name)
    for bucket in BUCKETS:
        values[bucket.env_var] = names.get(bucket.logical_id, bucket.default_name)
    return values
