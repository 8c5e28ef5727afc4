"""The synthesized CloudFormation matches `certplane.resources`, the specs `certplane dev` uses.

Expected values come from the specs (and `TableSpec.create_table_kwargs`, the exact call the dev
server makes), never from literals, so any drift between the CDK code and the specs fails here.
The app is synthesized once per module (about 5 s), from the packaged default configuration
(local engines only: no CA engine permissions anywhere; tests/unit/test_cdk_engine_grants.py
synthesizes a configuration with AWS engines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, cx_api
from aws_cdk.assertions import Match, Template

from app import build_app, create_app
from cdk.deployed_config import FILE_NAME, LAYER_FOLDER, PATH_IN_LAMBDA, DeployedConfig
from cdk.schedule import PUBLISH_RATE
from cdk.status_distribution import OBJECT_PATHS
from certplane import resources
from certplane.resources import (
    CONFIG_ENV,
    CRL_PUBLISHER,
    EST,
    EVENT_BUS,
    FUNCTIONS,
    MANAGEMENT_API,
    OCSP,
    STATUS_BUCKET,
    STATUS_FUNCTIONS,
    TABLES,
    WORKFLOW_FUNCTIONS,
    FunctionSpec,
    TableSpec,
)
from stacks.api_stack import ManagementApiStack
from stacks.enrollment_stack import ENROLLMENT_FUNCTIONS, EnrollmentStack
from stacks.events_stack import EventsStack
from stacks.inventory_stack import InventoryStack
from stacks.status_stack import StatusStack

ALL_FUNCTIONS = FUNCTIONS + STATUS_FUNCTIONS

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
    status: StatusStack
    templates: dict[str, Template]
    warnings: dict[str, list[str]]  # stack key -> synth-time warning messages

    def stack_key(self, spec: FunctionSpec) -> str:
        if spec in STATUS_FUNCTIONS:
            return "status"
        return "enrollment" if spec in ENROLLMENT_FUNCTIONS else "api"

    def stack(self, spec: FunctionSpec) -> Stack:
        stack = {"status": self.status, "enrollment": self.enrollment, "api": self.api}
        return stack[self.stack_key(spec)]


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
    warnings = {
        name: [
            str(message.entry.data)
            for message in assembly.get_stack_by_name(stack.stack_name).messages
            if message.level == cx_api.SynthesisMessageLevel.WARNING
        ]
        for name, stack in stacks.items()
    }
    inventory, events, api = stacks["inventory"], stacks["events"], stacks["api"]
    enrollment, status = stacks["enrollment"], stacks["status"]
    assert isinstance(inventory, InventoryStack)
    assert isinstance(events, EventsStack)
    assert isinstance(api, ManagementApiStack)
    assert isinstance(enrollment, EnrollmentStack)
    assert isinstance(status, StatusStack)
    return Synth(outdir, inventory, events, api, enrollment, status, templates, warnings)


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
    # The workflow steps' functions: tests/unit/test_cdk_workflows.py.
    expected = ALL_FUNCTIONS + WORKFLOW_FUNCTIONS
    assert sorted(handlers) == sorted(spec.handler for spec in expected)


@pytest.mark.parametrize("spec", ALL_FUNCTIONS, ids=lambda spec: spec.logical_id)
def test_function_runs_the_spec_handler(synth: Synth, spec: FunctionSpec) -> None:
    props = _function(synth, spec)["Properties"]
    assert props["Handler"] == spec.handler
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    template = synth.templates[synth.stack_key(spec)]
    assert "RetentionInDays" in _resource(template, log_group)["Properties"]


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda spec: spec.logical_id)
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
    if function in STATUS_FUNCTIONS:
        bucket = synth.status.status_bucket.bucket
        assert variables[STATUS_BUCKET.env_var] == stack.resolve(bucket.bucket_name)
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
    # No managed policy (not even AWSLambdaBasicExecutionRole): logs go to its own group only.
    assert "ManagedPolicyArns" not in role, role["ManagedPolicyArns"]
    assert "Policies" not in role
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements
    return statements


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda spec: spec.logical_id)
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
    status_objects = json.dumps(api.resolve(synth.status.status_bucket.bucket.arn_for_objects("*")))

    dynamodb: dict[str, set[str]] = {}  # table logical id -> actions
    kms: dict[str, set[str]] = {}  # table logical id (of the key) -> actions
    events: set[str] = set()
    s3_objects: set[str] = set()
    log_group = _function(synth, function)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    own_logs = json.dumps({"Fn::GetAtt": [log_group, "Arn"]})
    logs: set[str] = set()
    # Its own asynchronous-invocation DLQ, if it has one (the CRL publisher): send only.
    async_dlq = _function(synth, function)["Properties"].get("DeadLetterConfig", {})
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
                elif service == "s3":
                    assert target == status_objects, f"{action} on {target}"
                    s3_objects.add(action)
                elif service == "sts":  # the CertBridge role: test_cdk_engine_grants.py
                    assert function.signs and action == "sts:AssumeRole", f"{action} on {target}"
                    assert "CertplaneCertBridge-signer-" in target, target
                elif service == "logs":
                    assert target == own_logs, f"{action} on {target}"
                    logs.add(action)
                elif service == "sqs":
                    assert async_dlq and target == json.dumps(async_dlq["TargetArn"]), target
                    assert action == "sqs:SendMessage", f"{action} on {target}"
                elif service == "states":  # on the workflows' machines: test_cdk_workflows.py
                    assert function in (MANAGEMENT_API, EST), f"{action} on {target}"
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
    assert logs == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert events == ({"events:PutEvents"} if function.puts_events else set())
    if STATUS_BUCKET in function.read_write_buckets:
        assert synth.stack(function) is synth.status
        assert s3_objects == {"s3:GetObject", "s3:PutObject"}
    else:
        assert not s3_objects


# -- the REST API ------------------------------------------------------------------------


def test_api_proxies_every_route_to_the_function_with_access_logs(synth: Synth) -> None:
    template = synth.templates["api"]
    function_id = _logical_id(synth.api, synth.api.handler.function)
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "{proxy+}"})
    proxy_methods = template.find_resources(
        "AWS::ApiGateway::Method",
        {"Properties": {"HttpMethod": "ANY", "Integration": {"Type": "AWS_PROXY"}}},
    )
    assert len(proxy_methods) == 3  # "/", "/{proxy+}" and "/v1/{proxy+}" (test_cdk_api_auth.py)
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


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("function", ALL_FUNCTIONS, ids=lambda spec: spec.logical_id)
def test_function_loads_the_configuration_shipped_in_its_layer(
    synth: Synth, function: FunctionSpec
) -> None:
    """CERTPLANE_CONFIG names the file the config layer unpacks, holding the exact TOML."""
    props = _function(synth, function)["Properties"]
    assert props["Environment"]["Variables"][CONFIG_ENV] == PATH_IN_LAMBDA
    assert Path(PATH_IN_LAMBDA) == Path("/opt", LAYER_FOLDER, FILE_NAME)
    template = synth.templates[synth.stack_key(function)]
    # The last layer is the configuration (the first, the dependencies: test_lambda_dependencies).
    layer_ref = props["Layers"][-1]
    layer = _resource(template, layer_ref["Ref"])
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    asset = synth.outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"
    files = [p.relative_to(asset) for p in asset.rglob("*") if p.is_file()]
    assert files == [Path(LAYER_FOLDER, FILE_NAME)]
    assert (asset / LAYER_FOLDER / FILE_NAME).read_text() == DeployedConfig.load().text


def test_default_configuration_warns_that_the_local_engine_is_dev_only(synth: Synth) -> None:
    settings = DeployedConfig.load().settings
    local = [ca.id for ca in settings.cas if ca.engine == "local"]
    assert local
    for key in ("api", "enrollment", "status"):
        for ca_id in local:
            assert any(
                f"CA {ca_id!r} uses the local software engine: dev-only" in warning
                for warning in synth.warnings[key]
            ), (key, ca_id)
    assert not synth.warnings["inventory"] and not synth.warnings["events"]


# -- the status layer --------------------------------------------------------------------


def _only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"{resource_type}: {list(found)}"
    return next(iter(found.items()))


def test_status_bucket_is_private_versioned_encrypted_and_tls_only(synth: Synth) -> None:
    template = synth.templates["status"]
    bucket_id, bucket = _only(template, "AWS::S3::Bucket")
    assert bucket_id == _logical_id(synth.status, synth.status.status_bucket.bucket)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["DeletionPolicy"] == "Retain"

    _, policy = _only(template, "AWS::S3::BucketPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Principal"] == {"AWS": "*"} and deny["Action"] == "s3:*"
    assert deny["Condition"]["Bool"] == {"aws:SecureTransport": "false"}
    # The one exemption: CloudFront fetching for a distribution (plain-HTTP viewers).
    exempt = json.dumps(deny["Condition"]["StringNotLike"]["aws:SourceArn"])
    assert ":cloudfront::" in exempt and ":distribution/*" in exempt
    # Nobody but CloudFront (for this distribution) may read; nothing is public.
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows and all(s["Principal"] == {"Service": "cloudfront.amazonaws.com"} for s in allows)
    distribution_id = _logical_id(synth.status, synth.status.distribution.distribution)
    for allow in allows:
        assert allow["Action"] == "s3:GetObject"
        assert distribution_id in json.dumps(allow["Condition"])


def _distribution(synth: Synth) -> dict[str, Any]:
    _, distribution = _only(synth.templates["status"], "AWS::CloudFront::Distribution")
    return distribution["Properties"]["DistributionConfig"]


def test_distribution_serves_crls_and_ca_certificates_over_plain_http(synth: Synth) -> None:
    config = _distribution(synth)
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(behaviors) == {*OBJECT_PATHS, *(f"{p}*" for p in OCSP.path_prefixes)}
    bucket_id = _logical_id(synth.status, synth.status.status_bucket.bucket)
    for path in OBJECT_PATHS:
        behavior = behaviors[path]
        assert behavior["ViewerProtocolPolicy"] == "allow-all", path
        assert behavior["AllowedMethods"] == ["GET", "HEAD"]
        origin = origins[behavior["TargetOriginId"]]
        assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
        assert "OriginAccessControlId" in origin  # OAC, not a public bucket or legacy OAI
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    # Anything else (not a status URL) is HTTPS-only.
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "https-only"
    _, oac = _only(synth.templates["status"], "AWS::CloudFront::OriginAccessControl")
    assert oac["Properties"]["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"


def test_ocsp_behaviour_reaches_the_ocsp_function_over_plain_http(synth: Synth) -> None:
    config = _distribution(synth)
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    template = synth.templates["status"]
    api_id = _logical_id(synth.status, synth.status.ocsp_api.api)
    ocsp_function_id = _logical_id(synth.status, synth.status.ocsp.function)
    for prefix in OCSP.path_prefixes:
        (behavior,) = [b for b in config["CacheBehaviors"] if b["PathPattern"] == f"{prefix}*"]
        assert behavior["ViewerProtocolPolicy"] == "allow-all"
        assert "POST" in behavior["AllowedMethods"] and "GET" in behavior["AllowedMethods"]
        origin = origins[behavior["TargetOriginId"]]
        assert api_id in json.dumps(origin["DomainName"])
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    # The API proxies every method and path to the OCSP function, binary bodies untouched.
    api = _resource(template, api_id)["Properties"]
    assert api["BinaryMediaTypes"] == ["*/*"]
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert methods
    for method in methods.values():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert ocsp_function_id in json.dumps(integration["Uri"])


def test_scheduler_invokes_the_crl_publisher_every_minute_and_nothing_else(synth: Synth) -> None:
    template = synth.templates["status"]
    publisher_id = _logical_id(synth.status, synth.status.crl_publisher.function)
    _, schedule = _only(template, "AWS::Scheduler::Schedule")
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == PUBLISH_RATE == "rate(1 minute)"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["Target"]["Arn"] == {"Fn::GetAtt": [publisher_id, "Arn"]}
    role_id = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
    role = _resource(template, role_id)["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    dlq_id = props["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [publisher_id, "Arn"]},
        },
        {  # failed deliveries go to the schedule's DLQ (tests/unit/test_cdk_monitoring.py)
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [dlq_id, "Arn"]},
        },
    ]


def test_status_functions_come_from_the_status_specs(synth: Synth) -> None:
    assert set(synth.status.handlers) == {spec.logical_id for spec in STATUS_FUNCTIONS}
    assert synth.status.crl_publisher.spec is CRL_PUBLISHER
    assert synth.status.ocsp.spec is OCSP


def test_default_configuration_grants_no_ca_engine_permission_anywhere(synth: Synth) -> None:
    """Local engines only: no kms:Sign, acm-pca, Secrets Manager or Route 53 in any policy."""
    forbidden = ("kms:Sign", "kms:GetPublicKey", "acm-pca:", "secretsmanager:", "route53:")
    for name, template in synth.templates.items():
        for policy in template.find_resources("AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                for action in _as_list(statement["Action"]):
                    assert not action.startswith(forbidden), (name, action)
