"""The queue of one connector and its dead-letter queue (`connectors.routing.ConnectorRoute`).

EventBridge delivers to the queue; the connector Lambda consumes it with partial batch failures
(connectors.batch). A record that keeps failing moves to the DLQ after `max_receive_count`
receives; a record that cannot ever succeed is copied there by the batch layer with its reason.
`certplane events redrive` replays the DLQ into the queue.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from connectors.routing import ConnectorRoute

# Lambda's guidance for SQS event sources: visibility timeout >= 6 x the function's timeout,
# so a batch retried by the poller after throttling is not handed to a second invocation.
VISIBILITY_FACTOR = 6
QUEUE_RETENTION = Duration.days(4)
DLQ_RETENTION = Duration.days(14)  # SQS maximum: time to fix a target or an event and redrive


class ConnectorQueue(Construct):
    """Queue (redrive to the DLQ after `route.max_receive_count` receives) and DLQ, named from
    the route so `certplane dev` and `certplane events redrive` find them by name.

    Both are encrypted with SQS-managed keys (SSE-SQS: EventBridge can deliver to them without
    a customer key policy) and refuse requests not made over TLS.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        route: ConnectorRoute,
        function_timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.route = route
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=route.dlq_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=route.queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=QUEUE_RETENTION,
            visibility_timeout=Duration.seconds(VISIBILITY_FACTOR * function_timeout.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=route.max_receive_count
            ),
        )
