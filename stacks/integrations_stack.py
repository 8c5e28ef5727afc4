"""The integrations layer: per configured connector, rule → queue (→ DLQ) → Lambda.

One `[[connectors]]` entry of the configuration becomes an EventBridge rule on the certplane bus
(pattern from `connectors.routing.connector_route`, the same one `certplane dev` creates), a
`ConnectorQueue`, and a function running `lambdas.connector.handler` with an SQS event source
that reports partial batch failures. Each function may read only its own secret, consume only
its own queue and send only to its own DLQ. Without connectors the stack is empty (app.py
then leaves it out).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Annotations, ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.connector_queue import ConnectorQueue
from cdk.dependencies_layer import DependenciesLayer
from cdk.deployed_config import DeployedConfig
from cdk.function_role import function_role
from cdk.handler_function import POWERTOOLS_DEFAULTS, function_code
from certplane.config import ConnectorConfig
from connectors.routing import connector_route

HANDLER = "lambdas.connector.handler"
# Well above the HTTP sender's (connect, read) timeouts times a batch of 10 one-by-one sends.
CONNECTOR_TIMEOUT = Duration.seconds(60)
BATCH_SIZE = 10
# Targets rate-limit (Jira, Slack, PagerDuty): two concurrent batches per connector at most.
MAX_CONCURRENCY = 2


def _construct_id(name: str) -> str:
    """`acme-hooks` -> "AcmeHooks" (construct ids, and so logical ids, stay readable)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-") if part)


def secret_arn(scope: Construct, secret: str) -> str:
    """A full secret ARN as given; a name becomes NAME-?????? (as `EngineGrants` forms it)."""
    if secret.startswith("arn:"):
        return secret
    return Stack.of(scope).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{secret}-??????",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


class ConnectorFunction(Construct):
    """Rule, queues and function of one connector, with only its own access."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        connector: ConnectorConfig,
        bus: events.IEventBus,
        timeout: Duration = CONNECTOR_TIMEOUT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        super().__init__(scope, construct_id)
        self.connector = connector
        self.route = connector_route(
            connector.name, connector.tenant, connector.events, connector.filters
        )
        self.queues = ConnectorQueue(self, "Queues", route=self.route, function_timeout=timeout)

        environment = {
            **POWERTOOLS_DEFAULTS,
            "POWERTOOLS_SERVICE_NAME": f"certplane-connector-{connector.name}",
            "CERTPLANE_CONNECTOR_NAME": connector.name,
            "CERTPLANE_CONNECTOR_TYPE": connector.type,
            "CERTPLANE_CONNECTOR_OPTIONS": json.dumps(connector.options, sort_keys=True),
            "CERTPLANE_CONNECTOR_QUEUE_URL": self.queues.queue.queue_url,
            "CERTPLANE_CONNECTOR_DLQ_URL": self.queues.dlq.queue_url,
        }
        if connector.url:
            environment["CERTPLANE_CONNECTOR_URL"] = connector.url
        if connector.secret:
            environment["CERTPLANE_CONNECTOR_SECRET_ID"] = connector.secret
        elif connector.secret_env or connector.secret_file:
            Annotations.of(self).add_warning_v2(
                "certplane:ConnectorLocalSecret",
                f"connector {connector.name!r}: secret_env / secret_file are for certplane dev "
                "only; the deployed function gets no secret (set `secret` to a Secrets "
                "Manager name or ARN).",
            )

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"certplane connector {connector.name} ({connector.type}, "
            f"tenant {connector.tenant})",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=function_code(),
            environment=environment,
            memory_size=256,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=function_role(self, "Role", self.log_group),
            layers=[DependenciesLayer.of(self).layer],
        )

        # Consume (Receive, Delete, ChangeMessageVisibility, ...) on its queue only: the event
        # source grants it; ChangeMessageVisibility is stated too, since the batch layer's
        # Retry-After/backoff depends on it.
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queues.queue,
                batch_size=BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=MAX_CONCURRENCY,
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sqs:ChangeMessageVisibility"],
                resources=[self.queues.queue.queue_arn],
            )
        )
        # A permanently bad event is copied to the DLQ with its reason (connectors.batch).
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queues.dlq.queue_arn])
        )
        if connector.secret:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[secret_arn(self, connector.secret)],
                )
            )

        pattern = self.route.pattern
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=self.route.name,
            description=f"certplane events for connector {connector.name}",
            event_bus=bus,
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                detail=pattern["detail"],
            ),
        )
        # Events EventBridge cannot deliver to the queue go to the DLQ too: nothing is lost.
        self.rule.add_target(targets.SqsQueue(self.queues.queue, dead_letter_queue=self.queues.dlq))


class IntegrationsStack(Stack):
    """One `ConnectorFunction` per `[[connectors]]` entry; nothing without connectors."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        config: DeployedConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.connectors = {
            connector.name: ConnectorFunction(
                self, _construct_id(connector.name), connector=connector, bus=bus
            )
            for connector in config.settings.connectors
        }
