"""The one way certplane's REST APIs log and trace: a retained access-log group and stage options.

Every gateway (management, enrollment, OCSP) logs the same JSON fields, so one query works
across all of them.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_logs as logs
from constructs import Construct


def logged_stage(scope: Construct) -> tuple[logs.LogGroup, apigateway.StageOptions]:
    """An `AccessLogs` group in `scope` (1 year, retained) and stage options writing to it."""
    access_logs = logs.LogGroup(
        scope,
        "AccessLogs",
        retention=logs.RetentionDays.ONE_YEAR,
        removal_policy=RemovalPolicy.RETAIN,
    )
    options = apigateway.StageOptions(
        access_log_destination=apigateway.LogGroupLogDestination(access_logs),
        access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
            caller=True,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=True,
        ),
        tracing_enabled=True,
        metrics_enabled=True,
        # Execution logs of every method, errors only (cdk-nag AwsSolutions-APIG6); no bodies.
        logging_level=apigateway.MethodLoggingLevel.ERROR,
        data_trace_enabled=False,
    )
    return access_logs, options
