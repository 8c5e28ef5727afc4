"""Operations in the synthesized app: alarms, the alarm topic, the dashboard, DLQs, concurrency.

Two synths of the whole app. "watched" uses a configuration with a KMS CA and two connectors
and sets context (error rate, per-function reserved concurrency); "imported" uses the packaged
configuration and an existing alarm topic. Expected sets (functions, dead-letter queues, APIs)
are read from the other stacks' templates, never from the monitoring code, so a function or
DLQ added anywhere without an alarm fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from app import build_app, create_app
from cdk.concurrency import CRL_PUBLISHER_CONCURRENCY, ENGINE_CAPS
from cdk.deployed_config import DeployedConfig
from cdk.schedule import DELIVERY_MAX_AGE_SECONDS, DELIVERY_RETRIES
from certplane.config import Settings
from certplane.events import SOURCE, DetailType
from certplane.metrics import CERTIFICATES_ISSUED, CRL_PUBLISH_FAILURES, NAMESPACE, OLDEST_CRL_AGE
from certplane.resources import CERTIFIER_API, CRL_PUBLISHER, EST, MANAGEMENT_API, OCSP
from certplane.status.crl import crl_age_alarm_seconds

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
EXTRA = f"""
[[cas]]
id = "fleet-kms"
engine = "kms"
[cas.options]
key_id = "{KEY_ARN}"

[[connectors]]
name = "siem"
tenant = "default"
type = "splunk"
url = "https://splunk.example:8088/services/collector/event"
secret = "certplane/siem"
events = ["Certificate Issued"]

[[connectors]]
name = "chat-ops"
tenant = "default"
type = "slack"
secret = "certplane/slack"
events = ["CA Unavailable"]
"""
TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:oncall"
Templates = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Synth:
    templates: Templates  # stack key (build_app) -> template
    settings: Settings

    def resources(self, kind: str, stack: str | None = None) -> dict[str, dict[str, Any]]:
        """Resources of `kind` by logical id (of one stack) or by "stack/logical id" (all)."""
        return {
            logical_id if stack else f"{key}/{logical_id}": resource
            for key, template in self.templates.items()
            if stack in (None, key)
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == kind
        }

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        return {k: r["Properties"] for k, r in self.resources("AWS::CloudWatch::Alarm").items()}

    def function(self, handler: str) -> dict[str, Any]:
        (found,) = [
            r["Properties"]
            for r in self.resources("AWS::Lambda::Function").values()
            if r["Properties"].get("Handler") == handler
        ]
        return found


def _synth(tmp_path_factory: pytest.TempPathFactory, extra: str, **context: Any) -> Synth:
    folder = tmp_path_factory.mktemp("monitoring")
    config = folder / "certplane.toml"
    config.write_text(DeployedConfig.load().text + extra)
    app = create_app(outdir=str(folder / "cdk.out"), context={"config": str(config), **context})
    stacks = build_app(app)
    assembly = app.synth()
    templates = {
        key: assembly.get_stack_by_name(stack.stack_name).template for key, stack in stacks.items()
    }
    return Synth(templates, DeployedConfig.load(config).settings)


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(
        tmp_path_factory,
        EXTRA,
        alarm_error_rate_percent="2",
        # As `-c` passes it: a JSON string. Est capped, CertifierApi unreserved, Ocsp added.
        reserved_concurrency='{"Est": 7, "CertifierApi": 0, "Ocsp": 3}',
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory, "", alarm_topic_arn=TOPIC_ARN)


def _import_names(value: Any) -> list[str]:
    """Every exported name a (resolved) template value imports."""
    text = json.dumps(value)
    found = []
    for part in text.split('"Fn::ImportValue": "')[1:]:
        found.append(part.split('"', 1)[0])
    return found


def test_every_certplane_function_has_error_rate_and_throttle_alarms(watched: Synth) -> None:
    producers = {k: t for k, t in watched.templates.items() if k != "monitoring"}
    functions = [
        (key, logical_id)
        for key, template in producers.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"].get("Handler", "").startswith("lambdas.")
    ]
    assert len(functions) >= 7  # 5 core functions + 2 connectors (+ workflow steps)
    rate_alarms = [a for a in watched.alarms.values() if "Metrics" in a]
    throttle_alarms = [a for a in watched.alarms.values() if a.get("MetricName") == "Throttles"]
    for key, logical_id in functions:
        rate = [a for a in rate_alarms if logical_id in json.dumps(a)]
        throttles = [a for a in throttle_alarms if logical_id in json.dumps(a)]
        assert len(rate) == 1 and len(throttles) == 1, (key, logical_id)
        (alarm,) = rate
        (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
        assert "errors / invocations" in expression["Expression"]
        names = {
            m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m
        }
        assert names == {"Errors", "Invocations"}
        assert alarm["Threshold"] == 2  # context alarm_error_rate_percent
        assert alarm["DatapointsToAlarm"] == 2 and alarm["EvaluationPeriods"] == 3


def _dlq_ids(template: dict[str, Any]) -> set[str]:
    """Queues this template uses as dead-letter queues (redrive, Lambda async, Scheduler)."""
    found = set()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        targets = [
            props.get("RedrivePolicy", {}).get("deadLetterTargetArn"),
            props.get("DeadLetterConfig", {}).get("TargetArn"),
            props.get("Target", {}).get("DeadLetterConfig", {}).get("Arn"),
        ]
        found |= {t["Fn::GetAtt"][0] for t in targets if isinstance(t, dict) and "Fn::GetAtt" in t}
    return found


def test_every_dead_letter_queue_is_alarmed_encrypted_and_tls_only(watched: Synth) -> None:
    depth_alarms = [
        a
        for a in watched.alarms.values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    expected = {
        (key, logical_id)
        for key, template in watched.templates.items()
        for logical_id in _dlq_ids(template)
    }
    # Connector DLQs, the CRL publisher's async DLQ and its schedule's DLQ at least.
    assert {k for k, _ in expected} >= {"integrations", "status"}
    assert len([k for k, _ in expected if k == "status"]) == 2
    assert len(depth_alarms) == len(expected)
    for key, logical_id in expected:
        template = watched.templates[key]
        assert any(logical_id in json.dumps(a) for a in depth_alarms), (key, logical_id)
        queue = template["Resources"][logical_id]["Properties"]
        assert queue.get("SqsManagedSseEnabled") or queue.get("KmsMasterKeyId"), logical_id
        policies = [
            r["Properties"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::SQS::QueuePolicy"
            and {"Ref": logical_id} in r["Properties"]["Queues"]
        ]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for p in policies
            for s in p["PolicyDocument"]["Statement"]
        ), logical_id
    for alarm in depth_alarms:
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Statistic"] == "Maximum"


def test_api_5xx_alarm_per_rest_api(watched: Synth) -> None:
    apis = watched.resources("AWS::ApiGateway::RestApi")
    names = sorted(r["Properties"]["Name"] for r in apis.values())
    assert len(names) == 3  # management, enrollment, OCSP
    alarms = [a for a in watched.alarms.values() if a.get("MetricName") == "5XXError"]
    assert (
        sorted(d["Value"] for a in alarms for d in a["Dimensions"] if d["Name"] == "ApiName")
        == names
    )
    for alarm in alarms:
        assert alarm["Statistic"] == "Average" and alarm["Threshold"] == pytest.approx(0.02)


def test_engine_unavailable_rule_has_a_target_and_an_alarm(watched: Synth) -> None:
    rules = watched.resources("AWS::Events::Rule", "monitoring")
    ((rule_id, rule),) = rules.items()
    props = rule["Properties"]
    assert props["EventPattern"] == {
        "source": [SOURCE],
        "detail-type": [DetailType.CA_UNAVAILABLE.value],
    }
    assert _import_names(props["EventBusName"])  # the bus of the events stack
    (target,) = props["Targets"]
    (log_group_id,) = watched.resources("AWS::Logs::LogGroup", "monitoring")
    assert "log-group:" in json.dumps(target["Arn"]) and log_group_id in json.dumps(target["Arn"])
    (policy,) = watched.resources("AWS::Logs::ResourcePolicy", "monitoring").values()
    document = json.loads(
        policy["Properties"]["PolicyDocument"]
        if isinstance(policy["Properties"]["PolicyDocument"], str)
        else json.dumps(policy["Properties"]["PolicyDocument"])
    )
    assert "events.amazonaws.com" in json.dumps(document)
    # No custom-resource Lambda just to write the log group policy.
    assert not watched.resources("AWS::Lambda::Function", "monitoring")
    (alarm,) = [a for a in watched.alarms.values() if a.get("MetricName") == "TriggeredRules"]
    assert alarm["Namespace"] == "AWS/Events"
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions["RuleName"] == {"Ref": rule_id}
    assert set(dimensions) == {"RuleName", "EventBusName"}


def test_crl_age_and_failure_alarms(watched: Synth) -> None:
    service = CRL_PUBLISHER.environment["POWERTOOLS_SERVICE_NAME"]
    # What the deployed publisher emits with (certplane.metrics.handler_metrics).
    variables = watched.function(CRL_PUBLISHER.handler)["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == service
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    by_name = {a.get("MetricName"): a for a in watched.alarms.values()}
    age = by_name[OLDEST_CRL_AGE]
    assert age["Namespace"] == NAMESPACE
    assert age["Dimensions"] == [{"Name": "service", "Value": service}]
    assert age["Threshold"] == crl_age_alarm_seconds(watched.settings)
    assert age["Statistic"] == "Maximum"
    assert age["TreatMissingData"] == "breaching"  # a publisher that stopped reporting
    failures = by_name[CRL_PUBLISH_FAILURES]
    assert failures["Namespace"] == NAMESPACE and failures["Threshold"] == 0


def test_every_alarm_notifies_the_encrypted_tls_only_topic(watched: Synth) -> None:
    ((topic_id, topic),) = watched.resources("AWS::SNS::Topic", "monitoring").items()
    ((key_id, key),) = watched.resources("AWS::KMS::Key", "monitoring").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and "kms:GenerateDataKey*" in s["Action"]
        for s in key_statements
    )
    (policy,) = watched.resources("AWS::SNS::TopicPolicy", "monitoring").values()
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )
    assert len(watched.alarms) >= 20
    for alarm in watched.alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]


def test_dashboard_shows_issuance_latency_errors_dlqs_and_crl_age(watched: Synth) -> None:
    (dashboard,) = watched.resources("AWS::CloudWatch::Dashboard", "monitoring").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (
        CERTIFICATES_ISSUED,
        "p99",
        "Latency",
        "5XXError",
        "Errors",
        "ApproximateNumberOfMessagesVisible",
        OLDEST_CRL_AGE,
        CRL_PUBLISH_FAILURES,
    ):
        assert needle in body, needle
    for alarm_id in watched.resources("AWS::CloudWatch::Alarm", "monitoring"):
        assert f'"{alarm_id}", "Arn"' in body, alarm_id  # in the alarm status widget
    for spec in (MANAGEMENT_API, CERTIFIER_API, EST):
        assert spec.environment["POWERTOOLS_SERVICE_NAME"] in body


def test_reserved_concurrency_defaults_and_overrides(watched: Synth, imported: Synth) -> None:
    def reserved(synth: Synth, handler: str) -> int | None:
        return synth.function(handler).get("ReservedConcurrentExecutions")

    # A KMS CA is configured: issuing functions are capped unless context says otherwise.
    assert reserved(watched, MANAGEMENT_API.handler) == ENGINE_CAPS["kms"]
    assert reserved(watched, EST.handler) == 7
    assert reserved(watched, CERTIFIER_API.handler) is None  # 0 = unreserved
    assert reserved(watched, OCSP.handler) == 3
    assert reserved(watched, CRL_PUBLISHER.handler) == CRL_PUBLISHER_CONCURRENCY
    # Local engines only: nothing quota-bound, only the publisher runs one at a time.
    for spec in (MANAGEMENT_API, CERTIFIER_API, EST, OCSP):
        assert reserved(imported, spec.handler) is None, spec.logical_id
    assert reserved(imported, CRL_PUBLISHER.handler) == CRL_PUBLISHER_CONCURRENCY
    total = sum(
        r["Properties"].get("ReservedConcurrentExecutions", 0)
        for r in watched.resources("AWS::Lambda::Function").values()
    )
    assert total <= 100  # modest: far from the account's default 1000


def test_crl_publisher_async_dlq_and_schedule_dlq(imported: Synth) -> None:
    status = imported.templates["status"]["Resources"]
    publisher = imported.function(CRL_PUBLISHER.handler)
    dlq_id = publisher["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
    assert status[dlq_id]["Type"] == "AWS::SQS::Queue"
    (invoke_config,) = [
        r["Properties"] for r in status.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    ]
    assert invoke_config["MaximumRetryAttempts"] == 1
    assert invoke_config["MaximumEventAgeInSeconds"] == 300
    (schedule,) = [
        r["Properties"] for r in status.values() if r["Type"] == "AWS::Scheduler::Schedule"
    ]
    target = schedule["Target"]
    schedule_dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert schedule_dlq != dlq_id and status[schedule_dlq]["Type"] == "AWS::SQS::Queue"
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": DELIVERY_RETRIES,
        "MaximumEventAgeInSeconds": DELIVERY_MAX_AGE_SECONDS,
    }
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for r in status.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Action"] == "sqs:SendMessage" and s["Resource"] == {"Fn::GetAtt": [schedule_dlq, "Arn"]}
        for s in statements
    )


def test_imported_topic_is_used_as_is(imported: Synth) -> None:
    assert not imported.resources("AWS::SNS::Topic", "monitoring")
    assert not imported.resources("AWS::KMS::Key", "monitoring")
    assert imported.alarms
    for alarm in imported.alarms.values():
        assert alarm["AlarmActions"] == [TOPIC_ARN]
    assert "integrations" not in imported.templates  # no connectors: no connector DLQ alarms
