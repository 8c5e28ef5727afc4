"""An EventBridge Scheduler schedule invoking one function, with a role allowed only that."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PUBLISH_RATE = "rate(1 minute)"
# Scheduler retries only failed deliveries (the function invoked asynchronously accepted it or
# not); a delivery still failing after this goes to the schedule's DLQ.
DELIVERY_RETRIES = 2
DELIVERY_MAX_AGE_SECONDS = 300


class PublisherSchedule(Construct):
    """Runs the CRL publisher every minute; it regenerates only the CRLs that are due.

    Scheduler invokes the function asynchronously: a delivery that fails (permissions,
    throttled Invoke API) is retried briefly and then kept in `dead_letter_queue`, so a
    schedule that silently stopped working shows up as DLQ depth. Failed runs themselves are
    the function's concern (its own async retry and DLQ; see StatusStack).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        expression: str = PUBLISH_RATE,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="EventBridge Scheduler: invoke the certplane CRL publisher",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[function.function_arn]
            )
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            description="certplane: publish due CRL shards",
            schedule_expression=expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=function.function_arn,
                role_arn=self.role.role_arn,
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=DELIVERY_RETRIES,
                    maximum_event_age_in_seconds=DELIVERY_MAX_AGE_SECONDS,
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                    arn=dead_letter_queue.queue_arn
                ),
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn]
            )
        )
        # The role's policy must exist before Scheduler validates the target.
        self.schedule.node.add_dependency(self.role)
