"""Connectors in `certplane dev`: each `[[connectors]]` entry gets its rule, queue and DLQ in
the embedded AWS, exactly as the stack creates them, and is delivered in process.

Delivery is played the way the SQS event source plays it for the connector Lambda: receive a
batch, hand it to the same `ConnectorBatch` the Lambda uses, delete what succeeded. Failed
events wait out their backoff on the queue and go on the next pass, so a developer can stop
a local receiver and watch the events arrive once it is back. The secret comes from
`secret_env` / `secret_file` (a Secrets Manager id is looked up in the embedded AWS).

This module is the one place in the core that imports `connectors`, and only when a
configuration names connectors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from certplane.config import ConnectorConfig

logger = logging.getLogger(__name__)

# Short timeouts: delivery runs between requests of the dev front.
DEV_TIMEOUT = (1.0, 5.0)
DEV_BACKOFF_BASE = 2.0
MAX_BATCHES_PER_PASS = 20


@dataclass
class DevConnector:
    config: ConnectorConfig
    queue_url: str
    dlq_url: str
    batch: Any  # connectors.batch.ConnectorBatch


class DevConnectors:
    """All configured connectors of one `certplane dev`."""

    def __init__(
        self, configs: list[ConnectorConfig], sqs: Any, events: Any, secrets: Any, bus_name: str
    ) -> None:
        self._sqs = sqs
        self.connectors = [self._provision(c, events, secrets, bus_name) for c in configs]

    def _provision(
        self, config: ConnectorConfig, events: Any, secrets: Any, bus_name: str
    ) -> DevConnector:
        from connectors.batch import ConnectorBatch
        from connectors.http import HttpSender
        from connectors.registry import build_connector
        from connectors.routing import connector_route

        route = connector_route(config.name, config.tenant, config.events, config.filters)
        dlq_url = self._sqs.create_queue(QueueName=route.dlq_name)["QueueUrl"]
        redrive = {
            "deadLetterTargetArn": self._arn(dlq_url),
            "maxReceiveCount": str(route.max_receive_count),
        }
        queue_url = self._sqs.create_queue(
            QueueName=route.queue_name,
            Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "30"},
        )["QueueUrl"]
        events.put_rule(
            Name=route.name, EventBusName=bus_name, EventPattern=json.dumps(route.pattern)
        )
        events.put_targets(
            Rule=route.name,
            EventBusName=bus_name,
            Targets=[{"Id": "connector", "Arn": self._arn(queue_url)}],
        )
        secret = config.local_secret()
        if secret is None and config.secret:
            secret = secrets.get_secret_value(SecretId=config.secret)["SecretString"]
        options = dict(config.options)
        connector = build_connector(
            config.type, config.url, secret, {**options, "sender": HttpSender(timeout=DEV_TIMEOUT)}
        )
        batch = ConnectorBatch(
            connector,
            sqs=self._sqs,
            queue_url=queue_url,
            dlq_url=dlq_url,
            name=config.name,
            backoff_base=DEV_BACKOFF_BASE,
        )
        return DevConnector(config, queue_url, dlq_url, batch)

    def _arn(self, url: str) -> str:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def deliver_pending(self) -> int:
        """One pass over every connector queue; returns how many events left the queues
        (delivered, or parked in a DLQ with their reason)."""
        delivered = 0
        for connector in self.connectors:
            for _ in range(MAX_BATCHES_PER_PASS):
                done = self._one_batch(connector)
                if done is None:
                    break
                delivered += done
        return delivered

    def _one_batch(self, connector: DevConnector) -> int | None:
        messages = self._sqs.receive_message(
            QueueUrl=connector.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return None
        event = {"Records": [_lambda_record(m) for m in messages]}
        result = connector.batch(event, None)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        for message in succeeded:
            self._sqs.delete_message(
                QueueUrl=connector.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        if failed:
            logger.warning(
                "connector %s: %d events wait for a retry", connector.config.name, len(failed)
            )
        return len(succeeded)


def _lambda_record(message: dict[str, Any]) -> dict[str, Any]:
    """An SQS message as the Lambda event source hands it over."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
    }
