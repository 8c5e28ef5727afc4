"""An EventBridge Scheduler schedule that starts a state machine (the daily renewal sweep)."""

from __future__ import annotations

import json

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


class WorkflowSchedule(Construct):
    """Starts `state_machine` on `expression`; its role may start only that machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        expression: str,
        description: str,
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
        state_machine.grant_start_execution(self.role)
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            description=f"certplane: {description}",
            schedule_expression=expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=state_machine.state_machine_arn,
                role_arn=self.role.role_arn,
                input=json.dumps({}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=3, maximum_event_age_in_seconds=3600
                ),
            ),
        )
        self.schedule.node.add_dependency(self.role)
