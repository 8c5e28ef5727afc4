"""Configured connectors become rule → queue (→ DLQ) → Lambda, each with only its own access.

One synth (about 5 s) of the whole app from a temporary TOML (context `config`): the packaged
defaults plus two connectors of the default tenant (Splunk, Slack), one naming its secret by
name, one by ARN.
Expected values come from `connectors.routing.connector_route` and the configuration, never
from the synthesized template itself. Without connectors there is no integrations stack
(tests/unit/test_cdk_synth.py synthesizes the defaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, ArnFormat, Stack
from aws_cdk import aws_events as events

from app import build_app, create_app
from cdk.connector_queue import VISIBILITY_FACTOR
from cdk.deployed_config import DeployedConfig
from certplane.config import ConnectorConfig
from connectors.routing import DEFAULT_MAX_RECEIVE_COUNT, connector_route
from stacks.integrations_stack import CONNECTOR_TIMEOUT, HANDLER, IntegrationsStack

SIEM_SECRET = "certplane/default/splunk-hec"
SLACK_SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:certplane/slack-AbCdEf"
CONNECTORS = f"""
[[connectors]]
name = "siem"
tenant = "default"
type = "splunk"
url = "https://splunk.example:8088/services/collector/event"
secret = "{SIEM_SECRET}"
events = ["Certificate Issued", "Certificate Revoked"]
[connectors.filters]
"certificate.profile" = ["device", "server"]
[connectors.options]
index = "pki"
sourcetype = "certplane:event"

[[connectors]]
name = "chat-ops"
tenant = "default"
type = "slack"
secret = "{SLACK_SECRET}"
events = ["Certificate Expiring", "CA Unavailable"]
"""
NAMES = ("siem", "chat-ops")


@dataclass(frozen=True)
class Synth:
    stack: IntegrationsStack
    template: dict[str, Any]
    connectors: dict[str, ConnectorConfig]

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == kind
        }

    def logical_id(self, construct: Any) -> str:
        return self.stack.resolve(self.stack.get_logical_id(construct.node.default_child))

    def ids(self, name: str) -> dict[str, str]:
        wiring = self.stack.connectors[name]
        return {
            "queue": self.logical_id(wiring.queues.queue),
            "dlq": self.logical_id(wiring.queues.dlq),
            "function": self.logical_id(wiring.function),
            "rule": self.logical_id(wiring.rule),
            "role": self.logical_id(wiring.function.role),
        }

    def statements(self, name: str) -> list[dict[str, Any]]:
        """Every statement of the policies attached to connector `name`'s role."""
        role = self.ids(name)["role"]
        return [
            statement
            for policy in self.resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    folder = tmp_path_factory.mktemp("config")
    config = folder / "certplane.toml"
    config.write_text(DeployedConfig.load().text + CONNECTORS)
    app = create_app(outdir=str(folder / "cdk.out"), context={"config": str(config)})
    stacks = build_app(app)
    stack = stacks["integrations"]
    assert isinstance(stack, IntegrationsStack)
    assembly = app.synth()
    settings = DeployedConfig.load(config).settings
    return Synth(
        stack=stack,
        template=assembly.get_stack_by_name(stack.stack_name).template,
        connectors={c.name: c for c in settings.connectors},
    )


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def test_one_of_each_per_connector(synth: Synth) -> None:
    assert set(synth.stack.connectors) == set(NAMES)
    for kind in (
        "AWS::Events::Rule",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
    ):
        assert len(synth.resources(kind)) == len(NAMES), kind
    assert len(synth.resources("AWS::SQS::Queue")) == 2 * len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_rule_pattern_is_the_route(synth: Synth, name: str) -> None:
    config = synth.connectors[name]
    route = connector_route(config.name, config.tenant, config.events, config.filters)
    ids = synth.ids(name)
    rule = synth.template["Resources"][ids["rule"]]["Properties"]
    assert rule["EventPattern"] == route.pattern
    assert rule["Name"] == route.name
    assert rule["EventBusName"]  # the certplane bus (imported from the events stack)
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ids["queue"], "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [ids["dlq"], "Arn"]}


@pytest.mark.parametrize("name", NAMES)
def test_queue_redrives_to_its_dlq(synth: Synth, name: str) -> None:
    config = synth.connectors[name]
    route = connector_route(config.name, config.tenant, config.events, config.filters)
    ids = synth.ids(name)
    queue = synth.template["Resources"][ids["queue"]]["Properties"]
    dlq = synth.template["Resources"][ids["dlq"]]["Properties"]
    assert DEFAULT_MAX_RECEIVE_COUNT == 12
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [ids["dlq"], "Arn"]},
        "maxReceiveCount": 12,
    }
    assert queue["QueueName"] == route.queue_name
    assert dlq["QueueName"] == route.dlq_name
    function = synth.template["Resources"][ids["function"]]["Properties"]
    assert function["Timeout"] == CONNECTOR_TIMEOUT.to_seconds()
    assert queue["VisibilityTimeout"] >= VISIBILITY_FACTOR * function["Timeout"]
    for properties in (queue, dlq):
        assert properties["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize("name", NAMES)
def test_queues_refuse_plain_http(synth: Synth, name: str) -> None:
    ids = synth.ids(name)
    for queue in (ids["queue"], ids["dlq"]):
        denies = [
            statement
            for policy in synth.resources("AWS::SQS::QueuePolicy").values()
            if {"Ref": queue} in policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
        ]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies), (
            queue
        )


@pytest.mark.parametrize("name", NAMES)
def test_event_source_reports_batch_item_failures(synth: Synth, name: str) -> None:
    ids = synth.ids(name)
    (mapping,) = [
        m["Properties"]
        for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": ids["function"]}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [ids["queue"], "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("name", NAMES)
def test_function_environment(synth: Synth, name: str) -> None:
    config = synth.connectors[name]
    ids = synth.ids(name)
    function = synth.template["Resources"][ids["function"]]["Properties"]
    assert function["Handler"] == HANDLER
    env = function["Environment"]["Variables"]
    expected = {
        "CERTPLANE_CONNECTOR_NAME": config.name,
        "CERTPLANE_CONNECTOR_TYPE": config.type,
        "CERTPLANE_CONNECTOR_SECRET_ID": config.secret,
        "CERTPLANE_CONNECTOR_QUEUE_URL": {"Ref": ids["queue"]},
        "CERTPLANE_CONNECTOR_DLQ_URL": {"Ref": ids["dlq"]},
    }
    assert {key: env.get(key) for key in expected} == expected
    assert json.loads(env["CERTPLANE_CONNECTOR_OPTIONS"]) == config.options
    assert env.get("CERTPLANE_CONNECTOR_URL") == config.url  # chat-ops has none
    # The secret's value is never in the environment: only its id.
    assert not any("whsec_" in str(value) for value in env.values())


def _expected_secret_arn(stack: Stack, secret: str) -> Any:
    if secret.startswith("arn:"):
        return secret
    return stack.resolve(
        stack.format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{secret}-??????",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
    )


@pytest.mark.parametrize("name", NAMES)
def test_least_privilege(synth: Synth, name: str) -> None:
    config = synth.connectors[name]
    ids = synth.ids(name)
    statements = synth.statements(name)
    assert statements
    queue_arn = {"Fn::GetAtt": [ids["queue"], "Arn"]}
    dlq_arn = {"Fn::GetAtt": [ids["dlq"], "Arn"]}
    by_action: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            by_action.setdefault(action, []).extend(_resources(statement))

    assert config.secret
    assert by_action["secretsmanager:GetSecretValue"] == [
        _expected_secret_arn(synth.stack, config.secret)
    ]
    assert by_action["sqs:SendMessage"] == [dlq_arn]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert by_action[action] and all(r == queue_arn for r in by_action[action]), action
    sqs = {a: r for a, r in by_action.items() if a.startswith("sqs:")}
    assert {str(r) for rs in sqs.values() for r in rs} <= {str(queue_arn), str(dlq_arn)}
    allowed = {"sqs", "secretsmanager", "xray", "logs"}
    assert {action.split(":")[0] for action in by_action} <= allowed
    # Logs only to its own group (no AWSLambdaBasicExecutionRole: cdk/function_role.py).
    log_group = synth.logical_id(synth.stack.connectors[name].log_group)
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert by_action[action] == [{"Fn::GetAtt": [log_group, "Arn"]}], action
    assert {a for a in by_action if a.startswith("logs:")} == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }

    # Nothing of the other connector: not its queues, not its secret.
    for other in NAMES:
        if other == name:
            continue
        text = json.dumps(statements)
        for logical_id in (synth.ids(other)["queue"], synth.ids(other)["dlq"]):
            assert logical_id not in text
        other_secret = synth.connectors[other].secret
        assert other_secret and other_secret not in text


def test_no_connectors_no_stack() -> None:
    app = App()
    stack = IntegrationsStack(
        app,
        "Integrations",
        bus=events.EventBus.from_event_bus_name(Stack(app, "Bus"), "Bus", "certplane"),
        config=DeployedConfig.load(),
    )
    assert not DeployedConfig.load().settings.connectors
    assert stack.connectors == {}
    assert not stack.node.children
    assert "integrations" not in build_app(create_app(outdir=str(app.outdir)))
