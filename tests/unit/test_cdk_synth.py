"""The synthesized CloudFormation matches `certplane.resources`, the specs `certplane dev` uses.

Expected values come from the specs (and `TableSpec.create_table_kwargs`, the exact call the dev
server makes), never from literals, so any drift between the CDK code and the specs fails here.
The app is synthesized once per module (about 5 s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from app import build_app, create_app
from certplane import resources
from certplane.resources import (
    EVENT_BUS,
    FUNCTIONS,
    MANAGEMENT_API,
    TABLES,
    FunctionSpec,
    TableSpec,
)
from stacks.api_stack import ManagementApiStack
from stacks.enrollment_stack import ENROLLMENT_FUNCTIONS, EnrollmentStack
from stacks.events_stack import EventsStack
from stacks.inventory_stack import InventoryStack

# Read-only DynamoDB actions; anything else a grant adds counts as a write.
DYNAMODB_READ_ACTIONS = frozenset(
    {
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:Query",
        "dynamodb:Scan",
    }
)
KMS_READ_ACTIONS = frozenset({"kms:Decrypt", "kms:DescribeKey"})
XRAY_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
REPO_ROOT = Path(__file__).resolve().parents[2]
# What the Lambda runtime imports: the packages pyproject.toml ships.
RUNTIME_PACKAGES = ("certplane", "certbridge", "connectors", "lambdas")


@dataclass(frozen=True)
class Synth:
    outdir: Path
    inventory: InventoryStack
    events: EventsStack
    api: ManagementApiStack
    enrollment: EnrollmentStack
    templates: dict[str, Template]

    def stack_key(self, spec: FunctionSpec) -> str:
        return "enrollment" if spec in ENROLLMENT_FUNCTIONS else "api"

    def stack(self, spec: FunctionSpec) -> Stack:
        return self.enrollment if spec in ENROLLMENT_FUNCTIONS else self.api


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = create_app(outdir=str(outdir))
    stacks = build_app(app)
    assembly = app.synth()
    # Template.from_stack would re-synthesize the app once per stack; read the assembly instead.
    templates = {
        name: Template.from_json(assembly.get_stack_by_name(stack.stack_name).template)
        for name, stack in stacks.items()
    }
    inventory, events, api = stacks["inventory"], stacks["events"], stacks["api"]
    assert isinstance(inventory, InventoryStack)
    assert isinstance(events, EventsStack)
    assert isinstance(api, ManagementApiStack)
    assert isinstance(stacks["enrollment"], EnrollmentStack)
    return Synth(outdir, inventory, events, api, stacks["enrollment"], templates)


def _resource(template: Template, logical_id: str) -> dict[str, Any]:
    return template.to_json()["Resources"][logical_id]


def _logical_id(stack: Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- tables ------------------------------------------------------------------------------


def test_one_table_per_spec(synth: Synth) -> None:
    synth.templates["inventory"].resource_count_is("AWS::DynamoDB::Table", len(TABLES))
    assert set(synth.inventory.inventory_tables) == {spec.logical_id for spec in TABLES}


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.logical_id)
def test_table_matches_the_dev_server_table(synth: Synth, spec: TableSpec) -> None:
    construct = synth.inventory.inventory_tables[spec.logical_id]
    table = _resource(synth.templates["inventory"], _logical_id(synth.inventory, construct.table))
    props = table["Properties"]
    expected = spec.create_table_kwargs()

    assert props["BillingMode"] == expected["BillingMode"]
    assert props["KeySchema"] == expected["KeySchema"]

    def by_name(definitions: list[dict[str, str]]) -> list[dict[str, str]]:
        return sorted(definitions, key=lambda d: d["AttributeName"])

    assert by_name(props["AttributeDefinitions"]) == by_name(expected["AttributeDefinitions"])

    def indexes(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            index["IndexName"]: {"KeySchema": index["KeySchema"], "Projection": index["Projection"]}
            for index in items
        }

    assert indexes(props.get("GlobalSecondaryIndexes", [])) == indexes(
        expected.get("GlobalSecondaryIndexes", [])
    )
    assert "LocalSecondaryIndexes" not in props

    if spec.ttl_attribute is None:
        assert "TimeToLiveSpecification" not in props
    else:
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.logical_id)
def test_table_is_protected_and_encrypted_with_its_own_key(synth: Synth, spec: TableSpec) -> None:
    template = synth.templates["inventory"]
    construct = synth.inventory.inventory_tables[spec.logical_id]
    table = _resource(template, _logical_id(synth.inventory, construct.table))
    props = table["Properties"]

    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"

    sse = props["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse["SSEType"] == "KMS"
    key_id = _logical_id(synth.inventory, construct.key)
    assert sse["KMSMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = _resource(template, key_id)
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


# -- event bus ---------------------------------------------------------------------------


def test_event_bus_is_named_from_spec_and_archived(synth: Synth) -> None:
    template = synth.templates["events"]
    template.resource_count_is("AWS::Events::EventBus", 1)
    template.has_resource_properties("AWS::Events::EventBus", {"Name": EVENT_BUS.default_name})
    bus_id = _logical_id(synth.events, synth.events.bus)
    template.has_resource_properties(
        "AWS::Events::Archive",
        {
            "SourceArn": {"Fn::GetAtt": [bus_id, "Arn"]},
            "EventPattern": {"source": [EVENT_BUS.source]},
        },
    )


# -- the management API function ---------------------------------------------------------


def _function(synth: Synth, spec: FunctionSpec = MANAGEMENT_API) -> dict[str, Any]:
    functions = synth.templates[synth.stack_key(spec)].find_resources("AWS::Lambda::Function")
    matching = [f for f in functions.values() if f["Properties"]["Handler"] == spec.handler]
    assert len(matching) == 1, f"expected one function for {spec.handler}: {list(functions)}"
    return matching[0]


def test_every_function_spec_is_deployed_once(synth: Synth) -> None:
    handlers = [
        function["Properties"]["Handler"]
        for template in synth.templates.values()
        for function in template.find_resources("AWS::Lambda::Function").values()
    ]
    assert sorted(handlers) == sorted(spec.handler for spec in FUNCTIONS)


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.logical_id)
def test_function_runs_the_spec_handler(synth: Synth, spec: FunctionSpec) -> None:
    props = _function(synth, spec)["Properties"]
    assert props["Handler"] == spec.handler
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    template = synth.templates[synth.stack_key(spec)]
    assert "RetentionInDays" in _resource(template, log_group)["Properties"]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda spec: spec.logical_id)
def test_function_environment_names_the_deployed_tables_and_bus(
    synth: Synth, function: FunctionSpec
) -> None:
    variables = _function(synth, function)["Properties"]["Environment"]["Variables"]
    stack = synth.stack(function)
    assert set(resources.environment()) <= set(variables)
    for spec in TABLES:
        table = synth.inventory.tables[spec.logical_id]
        # The physical name of *this* table (a cross-stack import), not the dev default.
        assert variables[spec.env_var] == stack.resolve(table.table_name), spec.env_var
    assert variables[EVENT_BUS.env_var] == stack.resolve(synth.events.bus.event_bus_name)
    for name, value in function.environment.items():
        assert variables[name] == value
    assert any(name.startswith("POWERTOOLS_") for name in variables)


def test_function_asset_holds_every_runtime_file_and_no_repo_clutter(synth: Synth) -> None:
    asset_hash = _function(synth)["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    asset = synth.outdir / f"asset.{asset_hash}"
    module, _ = MANAGEMENT_API.handler.rsplit(".", 1)
    assert (asset / (module.replace(".", "/") + ".py")).is_file()
    for package in RUNTIME_PACKAGES:
        for path in (REPO_ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(REPO_ROOT)
                assert (asset / relative).is_file(), f"{relative} missing from the code asset"
    for excluded in (".venv", ".git", "tests", "cdk.out", "cdk", "stacks", "app.py", "cdk.json"):
        assert not (asset / excluded).exists(), excluded
    assert not list(asset.rglob("__pycache__"))


# -- least privilege ---------------------------------------------------------------------


def _function_statements(synth: Synth, spec: FunctionSpec) -> list[dict[str, Any]]:
    """Every IAM statement attached to the function's role (inline policies and managed)."""
    template = synth.templates[synth.stack_key(spec)]
    role_id = _function(synth, spec)["Properties"]["Role"]["Fn::GetAtt"][0]
    role = _resource(template, role_id)["Properties"]
    managed = json.dumps(role.get("ManagedPolicyArns", []))
    assert "AWSLambdaBasicExecutionRole" in managed
    assert len(role.get("ManagedPolicyArns", [])) == 1, managed
    assert "Policies" not in role
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements
    return statements


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda spec: spec.logical_id)
def test_function_policy_is_least_privilege(synth: Synth, function: FunctionSpec) -> None:
    api = synth.stack(function)
    table_arns: dict[str, str] = {}
    for spec in TABLES:
        arn = api.resolve(synth.inventory.tables[spec.logical_id].table_arn)
        table_arns[json.dumps(arn)] = spec.logical_id
        table_arns[json.dumps({"Fn::Join": ["", [arn, "/index/*"]]})] = spec.logical_id
    key_arns = {
        json.dumps(api.resolve(construct.key.key_arn)): logical_id
        for logical_id, construct in synth.inventory.inventory_tables.items()
    }
    bus_arn = json.dumps(api.resolve(synth.events.bus.event_bus_arn))

    dynamodb: dict[str, set[str]] = {}  # table logical id -> actions
    kms: dict[str, set[str]] = {}  # table logical id (of the key) -> actions
    events: set[str] = set()
    for statement in _function_statements(synth, function):
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Action", "Effect", "Resource", "Sid"}, statement
        actions = _as_list(statement["Action"])
        targets = [json.dumps(r) for r in _as_list(statement["Resource"])]
        for action in actions:
            service = action.split(":", 1)[0]
            for target in targets:
                if service == "dynamodb":
                    assert target in table_arns, f"{action} on {target}"
                    dynamodb.setdefault(table_arns[target], set()).add(action)
                elif service == "kms":
                    assert target in key_arns, f"{action} on {target}"
                    kms.setdefault(key_arns[target], set()).add(action)
                elif service == "events":
                    assert (action, target) == ("events:PutEvents", bus_arn), (action, target)
                    events.add(action)
                else:
                    assert action in XRAY_ACTIONS, f"unexpected {action} on {target}"

    read_write = {spec.logical_id for spec in function.read_write_tables}
    read_only = {spec.logical_id for spec in function.read_tables}
    assert set(dynamodb) == read_write | read_only
    writable = {table for table, actions in dynamodb.items() if actions - DYNAMODB_READ_ACTIONS}
    assert writable == read_write
    for table in read_write:
        assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= dynamodb[table]
    for table in read_only:
        assert {"dynamodb:GetItem", "dynamodb:Query"} <= dynamodb[table]

    assert set(kms) == read_write | read_only
    assert {table for table, actions in kms.items() if actions - KMS_READ_ACTIONS} == read_write
    assert events == ({"events:PutEvents"} if function.puts_events else set())


# -- the REST API ------------------------------------------------------------------------


def test_api_proxies_every_route_to_the_function_with_access_logs(synth: Synth) -> None:
    template = synth.templates["api"]
    function_id = _logical_id(synth.api, synth.api.handler.function)
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "{proxy+}"})
    proxy_methods = template.find_resources(
        "AWS::ApiGateway::Method",
        {"Properties": {"HttpMethod": "ANY", "Integration": {"Type": "AWS_PROXY"}}},
    )
    assert len(proxy_methods) == 2  # "/" and "/{proxy+}"
    for method in proxy_methods.values():
        assert function_id in json.dumps(method["Properties"]["Integration"]["Uri"])
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
            "TracingEnabled": True,
        },
    )


def test_enrollment_api_routes_each_prefix_to_its_function(synth: Synth) -> None:
    template = synth.templates["enrollment"].to_json()["Resources"]
    resources_by_id = {
        logical_id: r["Properties"]
        for logical_id, r in template.items()
        if r["Type"] == "AWS::ApiGateway::Resource"
    }

    def path_of(resource_id: str) -> str:
        props = resources_by_id[resource_id]
        parent = props["ParentId"]
        prefix = path_of(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{props['PathPart']}"

    routes: dict[str, str] = {}
    for r in template.values():
        if r["Type"] == "AWS::ApiGateway::Method" and r["Properties"]["HttpMethod"] == "ANY":
            path = path_of(r["Properties"]["ResourceId"]["Ref"])
            routes[path] = json.dumps(r["Properties"]["Integration"]["Uri"])
    for spec in ENROLLMENT_FUNCTIONS:
        function_id = _logical_id(
            synth.enrollment, synth.enrollment.handlers[spec.logical_id].function
        )
        for prefix in spec.path_prefixes:
            assert function_id in routes[f"{prefix}/{{proxy+}}"], prefix
    assert set(routes) == {f"{p}/{{proxy+}}" for s in ENROLLMENT_FUNCTIONS for p in s.path_prefixes}
