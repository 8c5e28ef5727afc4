"""Operations: alarms on every certplane function, dead-letter queue and REST API, plus the
CA-unavailable and CRL-age alarms and the dashboard (cdk/monitoring.py).

It only reads the other stacks (function names, queue names, API names, the bus), so it
depends on them and none depends on it: it can be deployed, changed or removed on its own.
Context: `alarm_topic_arn` (notify an existing topic instead of creating one) and
`alarm_error_rate_percent` (default 5).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from cdk.concurrency import ISSUING_FUNCTIONS
from cdk.dead_letter_queue import DeadLetterQueue
from cdk.deploy_context import alarm_error_rate_percent, alarm_topic_arn
from cdk.deployed_config import DeployedConfig
from cdk.evidence_store import BUFFER_INTERVAL, EvidenceStore
from cdk.monitoring import AlarmTopic, Monitoring
from certplane.resources import CRL_PUBLISHER
from certplane.status.crl import crl_age_alarm_seconds

HANDLER_PREFIX = "lambdas."  # certplane's own handlers (not CDK's custom-resource providers)
_NOT_ID = re.compile(r"[^A-Za-z0-9]+")


def _label(construct: IConstruct, used: set[str], with_stack: bool = False) -> str:
    """A readable, unique id from the construct's path inside its stack.

    "ManagementApi/Function" -> "ManagementApi", "AcmeHooks/Queues/DeadLetterQueue" ->
    "AcmeHooksQueuesDeadLetterQueue"; the stack's name (minus "Certplane") leads when asked
    or when the short form is taken.
    """
    stack = Stack.of(construct)
    parts = construct.node.path.split("/")[len(stack.node.path.split("/")) :]
    if parts[-1] in ("Function", "Queue", "Api", "Resource"):
        parts = parts[:-1]
    short = _NOT_ID.sub("", "".join(parts))
    stack_name = _NOT_ID.sub("", stack.node.id.removeprefix("Certplane"))
    label = f"{stack_name}{short}" if with_stack or not short or short in used else short
    used.add(label)
    return label


def certplane_functions(stacks: Sequence[Stack]) -> Iterator[lambda_.Function]:
    for stack in stacks:
        for construct in stack.node.find_all():
            if isinstance(construct, lambda_.Function):
                handler = getattr(construct.node.default_child, "handler", "") or ""
                if handler.startswith(HANDLER_PREFIX):
                    yield construct


def dead_letter_queues(stacks: Sequence[Stack]) -> Iterator[sqs.IQueue]:
    """Every queue something sends its failures to: a queue's redrive target, a function's
    async DLQ, or a `DeadLetterQueue` (scheduler targets)."""
    seen: set[str] = set()
    for stack in stacks:
        for construct in stack.node.find_all():
            found: sqs.IQueue | None = None
            if isinstance(construct, sqs.Queue) and construct.dead_letter_queue:
                found = construct.dead_letter_queue.queue
            elif isinstance(construct, lambda_.Function) and construct.dead_letter_queue:
                found = construct.dead_letter_queue
            elif isinstance(construct, DeadLetterQueue):
                found = construct.queue
            if found is not None and found.node.path not in seen:
                seen.add(found.node.path)
                yield found


def rest_apis(stacks: Sequence[Stack]) -> Iterator[apigateway.RestApi]:
    for stack in stacks:
        for construct in stack.node.find_all():
            if isinstance(construct, apigateway.RestApi):
                yield construct


class MonitoringStack(Stack):
    """Watches everything certplane deployed in `watched` (see module doc)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        watched: Sequence[Stack],
        bus: events.IEventBus,
        config: DeployedConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", topic_arn=alarm_topic_arn(self))
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            topic=self.alarm_topic.topic,
            error_rate_percent=alarm_error_rate_percent(self),
        )
        functions: set[str] = set()
        queues: set[str] = set()
        self.monitoring.show_issuance(
            [spec.environment["POWERTOOLS_SERVICE_NAME"] for spec in ISSUING_FUNCTIONS]
        )
        for api in rest_apis(watched):
            self.monitoring.watch_api(_label(api, set(), with_stack=True), api)
        self.monitoring.watch_crl_publisher(
            CRL_PUBLISHER.environment["POWERTOOLS_SERVICE_NAME"],
            crl_age_alarm_seconds(config.settings),
        )
        self.monitoring.watch_engine_unavailable(bus)
        for function in certplane_functions(watched):
            self.monitoring.watch_function(_label(function, functions), function)
        for queue in dead_letter_queues(watched):
            self.monitoring.watch_dead_letter_queue(_label(queue, queues), queue)
        for stack in watched:
            for store in (c for c in stack.node.find_all() if isinstance(c, EvidenceStore)):
                # Three buffer intervals: a flush was retried and failed at least twice.
                lag = 3 * int(BUFFER_INTERVAL.to_seconds())
                self.monitoring.watch_evidence_stream(store.stream_name, lag)
        self.monitoring.finish()
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.alarm_topic.topic.topic_arn,
            description="Subscribe the on-call channel here",
        )
