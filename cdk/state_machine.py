"""A certplane state machine from a `StateMachineSpec`: logged, traced, least privilege.

The definition is the spec's JSONPath ASL (the same text `certplane dev` creates in moto), with
each step function's ARN filled in through DefinitionSubstitutions. The role may invoke only
those functions (plus what logging and X-Ray need, which CDK adds) and, for a distributed Map,
start, describe and stop its own child executions.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from certplane.config import WorkflowSettings
from certplane.resources import StateMachineSpec
from certplane.workflows.definitions import uses_distributed_map


def logical_id_of(spec: StateMachineSpec) -> str:
    """The stable CloudFormation logical id (tests and the deploy smoke test look it up)."""
    return f"{spec.logical_id}StateMachine"


class CertplaneStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: StateMachineSpec,
        functions: Mapping[str, lambda_.IFunction],
        settings: WorkflowSettings,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        missing = [f.logical_id for f in spec.functions if f.logical_id not in functions]
        if missing:
            raise ValueError(f"{spec.logical_id} needs functions not passed in: {missing}")
        steps = [functions[f.logical_id] for f in spec.functions]
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"certplane {spec.logical_id}: invoke its step functions only",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[arn for f in steps for arn in (f.function_arn, f"{f.function_arn}:*")],
            )
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=spec.description,
            definition_body=sfn.DefinitionBody.from_string(spec.definition_text(settings)),
            definition_substitutions={
                f.logical_id: functions[f.logical_id].function_arn for f in spec.functions
            },
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        cfn = self.state_machine.node.default_child
        assert isinstance(cfn, sfn.CfnStateMachine)
        cfn.override_logical_id(logical_id_of(spec))
        if uses_distributed_map(spec.definition(settings)):
            self._allow_child_executions()

    def _allow_child_executions(self) -> None:
        """A distributed Map starts, watches and stops child executions of its own machine.

        A policy of its own (not the role's default policy, which the machine depends on),
        since it names the machine: that keeps CloudFormation free of a cycle.
        """
        machine = self.state_machine
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{machine.state_machine_name}/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        iam.Policy(
            self,
            "ChildExecutions",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution"], resources=[machine.state_machine_arn]
                ),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[executions],
                ),
            ],
        )
