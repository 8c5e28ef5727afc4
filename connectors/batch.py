"""SQS batch delivery with partial failures: what the connector Lambda does with a batch.

Each SQS record body is an EventBridge event. Per record:
- delivered → the record succeeds (SQS deletes it);
- RetryableDelivery → the record fails (Powertools reports it in `batchItemFailures`, so it
  returns to the queue) and its visibility is set to the target's Retry-After, or to an
  exponential backoff from its receive count, so retries honour the target instead of
  hammering it; after `maxReceiveCount` receives SQS moves it to the DLQ;
- PermanentDelivery → the record is copied to the DLQ at once with its reason (message
  attributes) and succeeds here: waiting cannot fix it, and the DLQ is where `redrive`
  replays from once the event or the configuration is fixed.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from connectors.base import (
    BatchConnector,
    CertplaneEvent,
    Connector,
    PermanentDelivery,
    RetryableDelivery,
)

logger = logging.getLogger(__name__)

MAX_VISIBILITY = 43_200  # SQS limit: 12 hours
REASON_ATTRIBUTE = "certplane-failure-reason"
CONNECTOR_ATTRIBUTE = "certplane-connector"
EVENT_ID_ATTRIBUTE = "certplane-event-id"
MAX_REASON_CHARS = 1000


def backoff_seconds(receive_count: int, base: float, cap: float = 900.0) -> int:
    """base · 2^(n-1), capped, with ±20 % jitter so a recovered target is not stampeded."""
    if base <= 0:
        return 0
    delay = min(cap, base * 2 ** max(0, receive_count - 1))
    return math.ceil(delay * random.uniform(0.8, 1.2))


class ConnectorBatch:
    """Runs one connector over SQS batches; one instance per Lambda container."""

    def __init__(
        self,
        connector: Connector,
        *,
        sqs: Any = None,
        queue_url: str | None = None,
        dlq_url: str | None = None,
        name: str = "",
        backoff_base: float = 10.0,
    ) -> None:
        self.connector = connector
        self._sqs = sqs
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._name = name or connector.type_name
        self._backoff_base = backoff_base
        # A batch where every record failed still answers with its batchItemFailures (rather
        # than raising): the visibility each record was given is what decides its next try.
        self._processor = BatchProcessor(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False
        )

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda response: `{"batchItemFailures": [...]}` (ReportBatchItemFailures)."""
        if isinstance(self.connector, BatchConnector) and len(event.get("Records", [])) > 1:
            try:
                return self._all_at_once(event)
            except _BatchRefused as refused:
                # One bad event spoils a whole request: find it by sending them one by one.
                logger.warning("connector %s: batch refused (%s); one by one", self._name, refused)
                event = {**event, "Records": refused.records}
        return process_partial_response(
            event=event, record_handler=self._record, processor=self._processor, context=context
        )

    def _all_at_once(self, event: dict[str, Any]) -> dict[str, Any]:
        """Deliver every valid record in one request; invalid records are parked first."""
        assert isinstance(self.connector, BatchConnector)
        valid: list[tuple[dict[str, Any], SQSRecord, CertplaneEvent]] = []
        for raw in event["Records"]:
            record = SQSRecord(raw)
            try:
                valid.append((raw, record, CertplaneEvent.from_envelope(record.body)))
            except PermanentDelivery as outcome:
                self._park(record, outcome.reason)
        if not valid:
            return {"batchItemFailures": []}
        try:
            self.connector.deliver_many([parsed for _, _, parsed in valid])
        except RetryableDelivery as outcome:
            for _, record, _ in valid:
                self._delay(record, outcome)
            logger.warning("connector %s will retry %d events: %s", self._name, len(valid), outcome)
            return {"batchItemFailures": [{"itemIdentifier": r.message_id} for _, r, _ in valid]}
        except PermanentDelivery as outcome:
            raise _BatchRefused(outcome.reason, [raw for raw, _, _ in valid]) from outcome
        return {"batchItemFailures": []}

    def _record(self, record: SQSRecord) -> None:
        try:
            certplane_event = CertplaneEvent.from_envelope(record.body)
            self.connector.deliver(certplane_event)
        except RetryableDelivery as outcome:
            self._delay(record, outcome)
            logger.warning("connector %s will retry %s: %s", self._name, record.message_id, outcome)
            raise
        except PermanentDelivery as outcome:
            self._park(record, outcome.reason)

    def _delay(self, record: SQSRecord, outcome: RetryableDelivery) -> None:
        if self._sqs is None or self._queue_url is None:
            return
        if outcome.retry_after is not None:
            seconds = int(min(MAX_VISIBILITY, max(0.0, outcome.retry_after)))
        else:
            count = int(record.attributes.approximate_receive_count or 1)
            seconds = backoff_seconds(count, self._backoff_base)
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=seconds,
            )
        except Exception:  # the queue's own visibility timeout still applies
            logger.exception("could not delay message %s", record.message_id)

    def _park(self, record: SQSRecord, reason: str) -> None:
        """Copy to the DLQ with the reason; if that is impossible, fail the record so the
        redrive policy gets it there (without the reason, which is logged instead)."""
        logger.error("connector %s gives up on %s: %s", self._name, record.message_id, reason)
        if self._sqs is None or self._dlq_url is None:
            raise PermanentDelivery(reason)
        attributes = {
            REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]},
            CONNECTOR_ATTRIBUTE: {"DataType": "String", "StringValue": self._name},
        }
        event_id = _event_id(record.body)
        if event_id:
            attributes[EVENT_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": event_id}
        self._sqs.send_message(
            QueueUrl=self._dlq_url, MessageBody=record.body, MessageAttributes=attributes
        )


class _BatchRefused(Exception):
    def __init__(self, reason: str, records: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.records = records


def _event_id(body: str) -> str | None:
    try:
        return str(CertplaneEvent.from_envelope(body).event_id)
    except PermanentDelivery:
        return None
