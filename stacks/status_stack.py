"""The revocation and status layer: status bucket, CloudFront, OCSP and the CRL publisher."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.concurrency import concurrency_for
from cdk.dead_letter_queue import DeadLetterQueue
from cdk.deployed_config import DeployedConfig
from cdk.handler_function import HandlerFunction
from cdk.schedule import PUBLISH_RATE, Schedule
from cdk.status_bucket import StatusBucket
from cdk.status_distribution import OcspApi, StatusDistribution
from certplane.resources import CRL_PUBLISHER, OCSP, STATUS_BUCKET


class StatusStack(Stack):
    """Serves status over plain HTTP through CloudFront; publishes CRLs every minute.

    Certificates carry the status URLs of `[status] url` in the configuration: point that
    (a CNAME on a custom domain, or the distribution's domain) at `StatusDomainName`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tables: Mapping[str, dynamodb.ITable],
        bus: events.IEventBus,
        config: DeployedConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.status_bucket = StatusBucket(self, STATUS_BUCKET.logical_id, spec=STATUS_BUCKET)
        buckets = {STATUS_BUCKET.logical_id: self.status_bucket.bucket}
        # Failed asynchronous runs of the publisher, and schedule deliveries that failed.
        self.publisher_dlq = DeadLetterQueue(self, "CrlPublisherDlq").queue
        self.schedule_dlq = DeadLetterQueue(self, "CrlPublisherScheduleDlq").queue
        self.handlers = {
            spec.logical_id: HandlerFunction(
                self,
                spec.logical_id,
                spec=spec,
                tables=tables,
                bus=bus,
                config=config,
                buckets=buckets,
                reserved_concurrency=concurrency_for(self, spec, config.settings),
                async_dead_letter_queue=self.publisher_dlq if spec is CRL_PUBLISHER else None,
            )
            for spec in (OCSP, CRL_PUBLISHER)
        }
        # A failed run is retried once; the next scheduled run comes a minute later anyway.
        self.crl_publisher.function.configure_async_invoke(
            retry_attempts=1, max_event_age=Duration.minutes(5)
        )
        self.ocsp_api = OcspApi(self, "OcspApi", function=self.ocsp.function)
        self.distribution = StatusDistribution(
            self, "Distribution", bucket=self.status_bucket.bucket, ocsp_api=self.ocsp_api.api
        )
        self.schedule = Schedule(
            self,
            "CrlPublisherSchedule",
            target_arn=self.crl_publisher.function.function_arn,
            action="lambda:InvokeFunction",
            expression=PUBLISH_RATE,
            description="publish due CRL shards",
            dead_letter_queue=self.schedule_dlq,
        )
        CfnOutput(
            self,
            "StatusDomainName",
            value=self.distribution.distribution.distribution_domain_name,
            description="Serves http://<this>/crl/..., /ca/..., /ocsp (set [status] url)",
        )

    @property
    def ocsp(self) -> HandlerFunction:
        return self.handlers[OCSP.logical_id]

    @property
    def crl_publisher(self) -> HandlerFunction:
        return self.handlers[CRL_PUBLISHER.logical_id]
