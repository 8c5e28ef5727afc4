"""An SQS dead-letter queue for events nobody could deliver or process (async Lambda, Scheduler).

Encrypted at rest with SQS-managed keys (SSE-SQS: Lambda and Scheduler can send to it without a
customer key policy), TLS-only, and kept for the SQS maximum of 14 days. The monitoring stack
alarms on any visible message (cdk/monitoring.py); the runbook is in docs/operations.md.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

DLQ_RETENTION = Duration.days(14)


class DeadLetterQueue(Construct):
    """One encrypted, TLS-only DLQ; `queue` is what functions and schedules point at."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
