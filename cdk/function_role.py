"""A Lambda execution role that may write only to the function's own log group.

Lambda's usual `AWSLambdaBasicExecutionRole` managed policy lets a function create any log
group and write to every one in the account (cdk-nag AwsSolutions-IAM4); this role instead
grants CreateLogStream/PutLogEvents on the one retained group the function logs to.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct


def function_role(scope: Construct, construct_id: str, log_group: logs.ILogGroup) -> iam.Role:
    """A role Lambda may assume, writing logs to `log_group` only (nothing else yet)."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description="certplane function role: its own log group, then the grants it is given",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    return role
