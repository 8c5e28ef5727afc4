"""An EventBridge Scheduler schedule with one target, a role allowed only that, and a DLQ."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PUBLISH_RATE = "rate(1 minute)"
# Scheduler retries only failed deliveries (the target accepted the invocation or not); a
# delivery still failing after this goes to the schedule's DLQ.
DELIVERY_RETRIES = 2
DELIVERY_MAX_AGE_SECONDS = 300


class Schedule(Construct):
    """Invokes `target_arn` on `expression`; its role may only `action` that target.

    Scheduler delivers asynchronously: a delivery that fails (permissions, throttled API) is
    retried briefly and then kept in `dead_letter_queue`, so a schedule that silently stopped
    working shows up as DLQ depth (alarmed by cdk/monitoring.py). What the target does with
    the invocation is its own concern (a function's async DLQ, a state machine's failures).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target_arn: str,
        action: str,
        expression: str,
        description: str,
        dead_letter_queue: sqs.IQueue,
        target_input: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description=f"EventBridge Scheduler: {description}",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=[action], resources=[target_arn]))
        self.role.add_to_policy(  # SendMessage only (grant_send_messages adds reads)
            iam.PolicyStatement(
                actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn]
            )
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            description=f"certplane: {description}",
            schedule_expression=expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=target_arn,
                role_arn=self.role.role_arn,
                input=None if target_input is None else json.dumps(target_input),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=DELIVERY_RETRIES,
                    maximum_event_age_in_seconds=DELIVERY_MAX_AGE_SECONDS,
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                    arn=dead_letter_queue.queue_arn
                ),
            ),
        )
        # The role's policy must exist before Scheduler validates the target.
        self.schedule.node.add_dependency(self.role)
