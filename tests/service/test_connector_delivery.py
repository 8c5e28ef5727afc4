"""Delivery guarantees on moto: bus → rule → SQS queue (with DLQ) → the connector Lambda.

The queues and the rule come from the connector's route (connectors.routing), the Lambda is
`lambdas.connector.handler` configured by environment with its secret in Secrets Manager,
and the SQS event source is played the way Lambda plays it: receive a batch, invoke, delete
what did not come back in `batchItemFailures`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from certplane.dev.lambda_host import DevLambdaContext
from certplane.events import DetailType, EventPublisher
from connectors.batch import EVENT_ID_ATTRIBUTE, REASON_ATTRIBUTE
from connectors.routing import ConnectorRoute, connector_route
from tests.connector_targets import WebhookReceiver, certificate, detail

N = 25


def provision(aws: Any, route: ConnectorRoute) -> tuple[str, str]:
    """What the connector's stack creates: DLQ, queue redriving to it, rule targeting it."""
    dlq_url = aws.sqs.create_queue(QueueName=route.dlq_name)["QueueUrl"]
    dlq_arn = _arn(aws, dlq_url)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(route.max_receive_count)}
    queue_url = aws.sqs.create_queue(
        QueueName=route.queue_name,
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "30"},
    )["QueueUrl"]
    aws.events.put_rule(
        Name=route.name,
        EventBusName=aws.bus_name,
        EventPattern=json.dumps(route.pattern),
        State="ENABLED",
    )
    aws.events.put_targets(
        Rule=route.name,
        EventBusName=aws.bus_name,
        Targets=[{"Id": "connector", "Arn": _arn(aws, queue_url)}],
    )
    return queue_url, dlq_url


def _arn(aws: Any, url: str) -> str:
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def _lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def counts(aws: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


class EventSource:
    """The SQS event source mapping of the connector function (batch size 10)."""

    def __init__(self, aws: Any, queue_url: str, handler: Any) -> None:
        self.aws = aws
        self.queue_url = queue_url
        self.queue_arn = _arn(aws, queue_url)
        self.handler = handler
        self.invocations = 0

    def poll(self) -> int:
        """One receive → invoke → delete; returns how many messages the batch had."""
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [_lambda_record(m, self.queue_arn) for m in messages]}
        self.invocations += 1
        result = self.handler(event, DevLambdaContext(function_name="certplane-connector"))
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.aws.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return len(messages)

    def poll_visible(self) -> int:
        """Poll until nothing is visible: one attempt for each waiting message."""
        total = 0
        while batch := self.poll():
            total += batch
        return total

    def run_until_empty(self, deadline_seconds: float = 20) -> None:
        deadline = time.monotonic() + deadline_seconds
        while counts(self.aws, self.queue_url) != (0, 0):
            if not self.poll():
                assert time.monotonic() < deadline, "the queue never drained"
                time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    target = WebhookReceiver()
    yield target
    target.close()


@pytest.fixture
def connector_function(aws, receiver, monkeypatch) -> Iterator[tuple[EventSource, str, str]]:
    """The webhook connector of tenant acme, deployed as the stack would deploy it."""
    import lambdas.connector

    route = connector_route(
        "acme-hooks", "acme", ["Certificate Issued", "Certificate Revoked", "Certificate Renewed"]
    )
    queue_url, dlq_url = provision(aws, route)
    secrets = aws.session.client("secretsmanager")
    secrets.create_secret(Name="certplane/acme/hooks", SecretString=receiver.secret)
    for name, value in {
        "CERTPLANE_CONNECTOR_NAME": "acme-hooks",
        "CERTPLANE_CONNECTOR_TYPE": "webhook",
        "CERTPLANE_CONNECTOR_URL": receiver.url,
        "CERTPLANE_CONNECTOR_SECRET_ID": "certplane/acme/hooks",
        "CERTPLANE_CONNECTOR_QUEUE_URL": queue_url,
        "CERTPLANE_CONNECTOR_DLQ_URL": dlq_url,
        # Retries come back after ~1 s here; in AWS the default base is 10 s.
        "CERTPLANE_CONNECTOR_OPTIONS": "{}",
    }.items():
        monkeypatch.setenv(name, value)
    lambdas.connector._batch.cache_clear()
    parameters.clear_caches()  # Powertools caches secrets per process, across tests too
    batch = lambdas.connector._batch()
    batch._backoff_base = 1
    yield EventSource(aws, queue_url, lambdas.connector.handler), queue_url, dlq_url
    lambdas.connector._batch.cache_clear()


def test_an_outage_loses_nothing_and_delivers_each_event_exactly_once(
    aws, receiver, connector_function
) -> None:
    source, queue_url, dlq_url = connector_function
    publisher = EventPublisher(aws.events, aws.bus_name)

    # The target is down (connection refused) while N events happen.
    receiver.target.down()
    sent = []
    for index in range(N):
        value = detail(DetailType.ISSUED, certificate=certificate(f"device-{index}"))
        publisher.publish(DetailType.ISSUED, value)
        sent.append(value["eventId"])
    # Not this connector's: another tenant, and a detail-type it did not subscribe to.
    publisher.publish(DetailType.ISSUED, detail(DetailType.ISSUED, tenant="globex"))
    publisher.publish(DetailType.EXPIRING, detail(DetailType.EXPIRING))
    assert counts(aws, queue_url) == (N, 0)

    assert source.poll_visible() == N  # every event tried once, every one failed
    assert counts(aws, queue_url) == (0, N)  # ... and waits, backing off
    assert receiver.target.requests == []

    # Back, but overloaded: 503 with Retry-After.
    receiver.target.up()
    receiver.mode, receiver.retry_after = "503", "1"
    time.sleep(2.5)
    assert source.poll_visible() == N
    assert len(receiver.target.requests) == N and not receiver.accepted

    # Healthy again: everything arrives, each event exactly once, nothing in the DLQ.
    receiver.mode = "ok"
    source.run_until_empty()
    assert sorted(receiver.accepted) == sorted(sent)
    assert set(receiver.accepted.values()) == {1}
    assert counts(aws, dlq_url) == (0, 0)
    assert receiver.failures == []


def test_a_permanently_bad_event_lands_in_the_dlq_with_its_reason(
    aws, receiver, connector_function
) -> None:
    source, _, dlq_url = connector_function
    publisher = EventPublisher(aws.events, aws.bus_name)
    receiver.reject_subject = "poison"
    good = detail(DetailType.ISSUED)
    poison = detail(DetailType.ISSUED, certificate=certificate("poison"))
    publisher.publish(DetailType.ISSUED, good)
    publisher.publish(DetailType.ISSUED, poison)
    # An event that breaks its schema (put around the publisher) is parked, never sent.
    broken = {**detail(DetailType.REVOKED), "revocation": {"reason": "bored"}}
    aws.events.put_events(
        Entries=[
            {
                "Source": "certplane",
                "DetailType": "Certificate Revoked",
                "Detail": json.dumps(broken),
                "EventBusName": aws.bus_name,
            }
        ]
    )
    source.run_until_empty()
    assert list(receiver.accepted) == [good["eventId"]]
    parked = aws.sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    reasons = {
        json.loads(m["Body"])["detail"]["eventId"]: m["MessageAttributes"][REASON_ATTRIBUTE][
            "StringValue"
        ]
        for m in parked
    }
    assert reasons.keys() == {poison["eventId"], broken["eventId"]}
    assert reasons[poison["eventId"]].startswith("webhook: HTTP 400")
    assert "breaks its schema" in reasons[broken["eventId"]]
    by_id = {m["MessageAttributes"].get(EVENT_ID_ATTRIBUTE, {}).get("StringValue") for m in parked}
    assert poison["eventId"] in by_id
    assert len(receiver.target.requests) == 2  # the broken event never reached the target


def test_a_target_that_never_recovers_sends_events_to_the_dlq_by_redrive(
    aws, receiver, connector_function
) -> None:
    """After maxReceiveCount failed receives SQS itself moves the event to the DLQ."""
    source, queue_url, dlq_url = connector_function
    receiver.mode, receiver.retry_after = "503", "0"  # "try again now", every time
    value = detail(DetailType.ISSUED)
    EventPublisher(aws.events, aws.bus_name).publish(DetailType.ISSUED, value)
    deadline = time.monotonic() + 20
    while not counts(aws, dlq_url)[0]:
        assert time.monotonic() < deadline, "the event never reached the DLQ"
        if not source.poll():
            time.sleep(0.05)
    assert counts(aws, queue_url) == (0, 0)
    (message,) = aws.sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert json.loads(message["Body"])["detail"]["eventId"] == value["eventId"]
    assert source.invocations == 12  # DEFAULT_MAX_RECEIVE_COUNT
