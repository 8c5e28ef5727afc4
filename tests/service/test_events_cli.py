"""`certplane events dlq | redrive | replay` against moto, driven through the typer app.

moto 5.2.5 covers: SQS (queues, redrive policy, message attributes, batch send/delete,
visibility) and EventBridge archives and StartReplay, which re-delivers archived events to the
bus's rules synchronously. It does not implement SQS StartMessageMoveTask (so redrive takes
its receive/send/delete path here), and its replay ignores the time window and FilterArns, so
those are asserted on the StartReplay request itself (botocore `before-parameter-build` hook).
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

import certplane.cli.events as events_cli
from certplane.cli.main import app
from certplane.operations import events as ops
from connectors import batch
from connectors.routing import connector_route
from tests.conftest import REGION, AwsStack

CONNECTOR = "hooks"
TENANT = "acme"
runner = CliRunner()


@dataclass
class ConnectorStack:
    aws: AwsStack
    queue_url: str
    dlq_url: str
    rule_arn: str
    archive_arn: str
    calls: list[tuple[str, dict[str, Any]]]


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


@pytest.fixture
def stack(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> ConnectorStack:
    """The `aws` fixture plus one connector's rule → queue → DLQ, and the bus archive."""
    route = connector_route(CONNECTOR, TENANT, ["Certificate Issued", "Certificate Revoked"])
    dlq_url = aws.sqs.create_queue(QueueName=route.dlq_name)["QueueUrl"]
    policy = {"deadLetterTargetArn": _arn(aws.sqs, dlq_url), "maxReceiveCount": "12"}
    queue_url = aws.sqs.create_queue(
        QueueName=route.queue_name, Attributes={"RedrivePolicy": json.dumps(policy)}
    )["QueueUrl"]
    rule_arn = aws.events.put_rule(
        Name=route.name, EventBusName=aws.bus_name, EventPattern=json.dumps(route.pattern)
    )["RuleArn"]
    aws.events.put_targets(
        Rule=route.name,
        EventBusName=aws.bus_name,
        Targets=[{"Id": "connector", "Arn": _arn(aws.sqs, queue_url)}],
    )
    bus_arn = aws.events.describe_event_bus(Name=aws.bus_name)["Arn"]
    archive_arn = aws.events.create_archive(
        ArchiveName="CertplaneEventsArchive1234",
        EventSourceArn=bus_arn,
        EventPattern=json.dumps({"source": ["certplane"]}),
        RetentionDays=365,
    )["ArchiveArn"]

    calls: list[tuple[str, dict[str, Any]]] = []
    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    session.events.register("before-parameter-build.*.*", record)
    monkeypatch.setattr(events_cli, "session", lambda region, profile: session)
    return ConnectorStack(aws, queue_url, dlq_url, rule_arn, archive_arn, calls)


def _envelope(detail_type: str = "Certificate Issued") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "certplane",
        "detail-type": detail_type,
        "detail": {"tenant": TENANT, "eventId": str(uuid.uuid4()), "schemaVersion": "1.0"},
    }


def _dead_letter(stack: ConnectorStack, reason: str | None, detail_type: str) -> dict[str, Any]:
    """A DLQ message as connectors.batch parks it (or, without reason, as SQS moves it)."""
    envelope = _envelope(detail_type)
    attributes = {}
    if reason:
        attributes = {
            batch.REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason},
            batch.CONNECTOR_ATTRIBUTE: {"DataType": "String", "StringValue": CONNECTOR},
            batch.EVENT_ID_ATTRIBUTE: {
                "DataType": "String",
                "StringValue": envelope["detail"]["eventId"],
            },
        }
    stack.aws.sqs.send_message(
        QueueUrl=stack.dlq_url, MessageBody=json.dumps(envelope), MessageAttributes=attributes
    )
    return envelope


def _fill_dlq(stack: ConnectorStack) -> list[dict[str, Any]]:
    return [
        _dead_letter(stack, "HTTP 400: bad payload", "Certificate Issued"),
        _dead_letter(stack, "HTTP 400: bad payload", "Certificate Revoked"),
        _dead_letter(stack, "HTTP 404: no such repository", "Certificate Issued"),
        _dead_letter(stack, None, "Certificate Revoked"),
    ]


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        batch_ = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch_:
            return messages
        for message in batch_:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch_)


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _invoke(*args: str) -> Any:
    result = runner.invoke(app, ["events", *args])
    return result


# -- names and attributes ---------------------------------------------------------------


def test_attribute_names_match_the_batch_layer() -> None:
    assert ops.REASON_ATTRIBUTE == batch.REASON_ATTRIBUTE
    assert ops.CONNECTOR_ATTRIBUTE == batch.CONNECTOR_ATTRIBUTE
    assert ops.EVENT_ID_ATTRIBUTE == batch.EVENT_ID_ATTRIBUTE


def test_names_come_from_the_connector_route() -> None:
    route = connector_route(CONNECTOR, TENANT, ["Certificate Issued"])
    assert ops.connector_names(CONNECTOR) == (route.name, route.queue_name, route.dlq_name)
    with pytest.raises(ops.OperationError):
        ops.connector_names("Not_A_Name")


def test_parse_time() -> None:
    now = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
    assert ops.parse_time("6h", now) == now - datetime.timedelta(hours=6)
    assert ops.parse_time("2d", now) == now - datetime.timedelta(days=2)
    assert ops.parse_time("2026-12-01T08:00") == datetime.datetime(
        2026, 12, 1, 8, tzinfo=datetime.UTC
    )
    assert ops.parse_time("2026-12-01T08:00Z").tzinfo is not None
    with pytest.raises(ops.OperationError):
        ops.parse_time("yesterday")


# -- dlq and redrive ---------------------------------------------------------------------


def test_dlq_lists_events_and_leaves_them(stack: ConnectorStack) -> None:
    parked = _fill_dlq(stack)
    result = _invoke("dlq", "--connector", CONNECTOR, "--json")
    assert result.exit_code == 0, result.output
    listed = {item["event_id"]: item for item in json.loads(result.stdout)}
    assert set(listed) == {envelope["detail"]["eventId"] for envelope in parked}
    first = listed[parked[0]["detail"]["eventId"]]
    assert first["detail_type"] == "Certificate Issued"
    assert first["reason"] == "HTTP 400: bad payload"
    assert listed[parked[3]["detail"]["eventId"]]["reason"] == ops.NO_REASON
    # A listing moves nothing, and the messages are visible again at once.
    assert _count(stack.aws.sqs, stack.queue_url) == 0
    assert len(_drain(stack.aws.sqs, stack.dlq_url)) == 4

    table = _invoke("dlq", "--connector", CONNECTOR)
    assert table.exit_code == 0 and "0 message(s)" in table.output


def test_redrive_moves_exactly_the_dlq_back(stack: ConnectorStack) -> None:
    parked = _fill_dlq(stack)
    result = _invoke("redrive", "--connector", CONNECTOR)
    assert result.exit_code == 0, result.output
    assert "moved 4 message(s)" in result.output
    assert "receive/send/delete" in result.output  # moto lacks StartMessageMoveTask
    assert "HTTP 400: bad payload" in result.output and "HTTP 404" in result.output
    assert any(name == "StartMessageMoveTask" for name, _ in stack.calls)

    assert _count(stack.aws.sqs, stack.dlq_url) == 0
    moved = _drain(stack.aws.sqs, stack.queue_url)
    assert sorted(m["Body"] for m in moved) == sorted(json.dumps(e) for e in parked)
    reasons = [
        m.get("MessageAttributes", {}).get(batch.REASON_ATTRIBUTE, {}).get("StringValue")
        for m in moved
    ]
    assert sorted(r or "" for r in reasons) == sorted(
        ["HTTP 400: bad payload", "HTTP 400: bad payload", "HTTP 404: no such repository", ""]
    )


def test_redrive_summary_as_json(stack: ConnectorStack) -> None:
    _fill_dlq(stack)
    result = _invoke("redrive", "--connector", CONNECTOR, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "copy"
    assert (summary["moved"], summary["failed"], summary["found"]) == (4, 0, 4)
    assert summary["reasons"] == {
        "HTTP 400: bad payload": 2,
        "HTTP 404: no such repository": 1,
        ops.NO_REASON: 1,
    }
    assert summary["detail_types"] == {"Certificate Issued": 2, "Certificate Revoked": 2}


def test_redrive_dry_run_moves_nothing(stack: ConnectorStack) -> None:
    _fill_dlq(stack)
    result = _invoke("redrive", "--connector", CONNECTOR, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 message(s) would move" in result.output and "nothing moved" in result.output
    assert _count(stack.aws.sqs, stack.queue_url) == 0
    assert len(_drain(stack.aws.sqs, stack.dlq_url)) == 4
    assert not any(
        name in {"SendMessageBatch", "DeleteMessageBatch", "StartMessageMoveTask"}
        for name, _ in stack.calls
    )


def test_redrive_max_moves_at_most_n(stack: ConnectorStack) -> None:
    _fill_dlq(stack)
    result = _invoke("redrive", "--connector", CONNECTOR, "--max", "3")
    assert result.exit_code == 0, result.output
    assert "moved 3 message(s)" in result.output
    assert not any(name == "StartMessageMoveTask" for name, _ in stack.calls)
    assert len(_drain(stack.aws.sqs, stack.queue_url)) == 3
    assert len(_drain(stack.aws.sqs, stack.dlq_url)) == 1


def test_redrive_empty_dlq_and_unknown_connector(stack: ConnectorStack) -> None:
    empty = _invoke("redrive", "--connector", CONNECTOR)
    assert empty.exit_code == 0 and "moved 0 message(s)" in empty.output
    unknown = _invoke("redrive", "--connector", "nobody")
    assert unknown.exit_code == 1
    assert "certplane-connector-nobody" in unknown.output


# -- replay ------------------------------------------------------------------------------


def _put(stack: ConnectorStack, envelopes: list[dict[str, Any]]) -> None:
    stack.aws.events.put_events(
        Entries=[
            {
                "EventBusName": stack.aws.bus_name,
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
            }
            for e in envelopes
        ]
    )


def test_replay_redelivers_archived_events_to_the_connector(stack: ConnectorStack) -> None:
    sent = [_envelope(), _envelope("Certificate Revoked"), _envelope()]
    _put(stack, sent)
    first = _drain(stack.aws.sqs, stack.queue_url)
    assert len(first) == 3  # delivered once, and archived
    _drain(stack.aws.sqs, stack.aws.tap_queue_url)

    result = _invoke("replay", "--since", "1h", "--connector", CONNECTOR, "--wait", "30", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["state"] == "COMPLETED"
    assert summary["archive"] == stack.archive_arn
    assert summary["filter_arns"] == [stack.rule_arn]

    again = [json.loads(m["Body"]) for m in _drain(stack.aws.sqs, stack.queue_url)]
    assert sorted(e["detail"]["eventId"] for e in again) == sorted(
        e["detail"]["eventId"] for e in sent
    )
    assert all(e.get("replay-name") == summary["replay"] for e in again)

    (request,) = [params for name, params in stack.calls if name == "StartReplay"]
    bus_arn = stack.aws.events.describe_event_bus(Name=stack.aws.bus_name)["Arn"]
    assert request["EventSourceArn"] == stack.archive_arn
    assert request["Destination"] == {"Arn": bus_arn, "FilterArns": [stack.rule_arn]}
    span = request["EventEndTime"] - request["EventStartTime"]
    assert datetime.timedelta(minutes=59) < span <= datetime.timedelta(hours=1, seconds=5)
    assert any(name == "DescribeReplay" for name, _ in stack.calls)


def test_replay_window_and_whole_bus(stack: ConnectorStack) -> None:
    _put(stack, [_envelope()])
    result = _invoke(
        "replay", "--since", "2026-12-01T08:00:00Z", "--until", "2026-12-01T09:30:00+00:00"
    )
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.output and "every rule on bus" in result.output
    (request,) = [params for name, params in stack.calls if name == "StartReplay"]
    assert request["Destination"] == {
        "Arn": stack.aws.events.describe_event_bus(Name=stack.aws.bus_name)["Arn"]
    }
    assert request["EventStartTime"] == datetime.datetime(2026, 12, 1, 8, tzinfo=datetime.UTC)
    assert request["EventEndTime"] == datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC)


def test_replay_refusals(stack: ConnectorStack) -> None:
    backwards = _invoke("replay", "--since", "1h", "--until", "2h")
    assert backwards.exit_code == 1 and "before" in backwards.output
    no_rule = _invoke("replay", "--since", "1h", "--connector", "nobody")
    assert no_rule.exit_code == 1 and "certplane-connector-nobody" in no_rule.output
    bad_time = _invoke("replay", "--since", "last tuesday")
    assert bad_time.exit_code == 1 and "ISO 8601" in bad_time.output


class _MoveTaskSqs:
    """Stands in for SQS where StartMessageMoveTask exists (moto 5.2.5 lacks it)."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.polls = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        return {"Messages": []}

    def start_message_move_task(self, **params: Any) -> dict[str, Any]:
        self.started.append(params)
        return {"TaskHandle": "task-1"}

    def list_message_move_tasks(self, **_: Any) -> dict[str, Any]:
        self.polls += 1
        status = "COMPLETED" if self.polls > 1 else "RUNNING"
        return {
            "Results": [
                {"TaskHandle": "task-1", "Status": status, "ApproximateNumberOfMessagesMoved": 5}
            ]
        }


def test_redrive_uses_the_move_task_where_sqs_has_it() -> None:
    queues = ops.ConnectorQueues("hooks", "rule", "q-url", "q-arn", "dlq-url", "dlq-arn")
    sqs = _MoveTaskSqs()
    result = ops.redrive(sqs, queues, sleep=lambda _: None)
    assert sqs.started == [{"SourceArn": "dlq-arn", "DestinationArn": "q-arn"}]
    assert (result.method, result.moved, result.failed, result.task_status) == (
        "move-task",
        5,
        0,
        "COMPLETED",
    )
