"""The lifecycle layer's Step Functions workflows, their step functions and the daily sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.dead_letter_queue import DeadLetterQueue
from cdk.deployed_config import DeployedConfig
from cdk.handler_function import HandlerFunction
from cdk.schedule import Schedule
from cdk.state_machine import CertplaneStateMachine
from certplane.resources import (
    APPROVAL_WORKFLOW,
    RENEWAL_SWEEP,
    STATE_MACHINES,
    WORKFLOW_FUNCTIONS,
)

# A step handles a page of certificates (each may be signed); no API Gateway bounds it.
STEP_TIMEOUT = Duration.minutes(5)


class WorkflowsStack(Stack):
    """One step function and one state machine per workflow (certplane.resources)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tables: Mapping[str, dynamodb.ITable],
        bus: events.IEventBus,
        config: DeployedConfig,
        buckets: Mapping[str, s3.IBucket],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.handlers = {
            spec.logical_id: HandlerFunction(
                self,
                spec.logical_id,
                spec=spec,
                tables=tables,
                bus=bus,
                config=config,
                buckets=buckets,
                timeout=STEP_TIMEOUT,
            )
            for spec in WORKFLOW_FUNCTIONS
        }
        functions = {logical_id: h.function for logical_id, h in self.handlers.items()}
        settings = config.settings.workflows
        self.machines = {
            spec.logical_id: CertplaneStateMachine(
                self, spec.logical_id, spec=spec, functions=functions, settings=settings
            )
            for spec in STATE_MACHINES
        }
        sweep = self.machines[RENEWAL_SWEEP.logical_id].state_machine
        self.sweep_schedule = Schedule(
            self,
            "RenewalSweepSchedule",
            target_arn=sweep.state_machine_arn,
            action="states:StartExecution",
            expression=settings.sweep_schedule,
            description="start the renewal sweep",
            dead_letter_queue=DeadLetterQueue(self, "RenewalSweepScheduleDlq").queue,
            target_input={},
        )

    def grant_control(self, function: lambda_.Function) -> None:
        """Let `function` (the management API) start every workflow, read its executions and
        answer approval tasks; the machines' ARNs go into its environment."""
        for spec in STATE_MACHINES:
            machine = self.machines[spec.logical_id].state_machine
            machine.grant_start_execution(function)
            machine.grant_execution(function, "states:DescribeExecution")
            function.add_environment(spec.env_var, machine.state_machine_arn)
        self.machines[APPROVAL_WORKFLOW.logical_id].state_machine.grant_task_response(function)

    def grant_approval_requests(self, function: lambda_.Function) -> None:
        """Let `function` (EST) start the approval workflow for a request it holds."""
        machine = self.machines[APPROVAL_WORKFLOW.logical_id].state_machine
        machine.grant_start_execution(function)
        function.add_environment(APPROVAL_WORKFLOW.env_var, machine.state_machine_arn)
