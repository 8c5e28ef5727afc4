"""CloudWatch alarms and a dashboard for certplane, all alarms notifying one SNS topic.

`Monitoring` offers one `watch_*` method per kind of thing (function, dead-letter queue, REST
API, the CA-unavailable event, the CRL publisher); `MonitoringStack` finds the things in the
other stacks and calls them. What each alarm means and what to do about it is in
docs/operations.md; the alarm descriptions say the same in one line.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from certplane.events import SOURCE, DetailType
from certplane.metrics import (
    CERTIFICATES_ISSUED,
    CRL_PUBLISH_FAILURES,
    NAMESPACE,
    OLDEST_CRL_AGE,
)

PERIOD = Duration.minutes(5)
WIDGET_WIDTH = 12
ALARMS_PER_WIDGET = 100  # CloudWatch's limit for one alarm status widget


@jsii.implements(events.IRuleTarget)
class LogGroupTarget:
    """A rule target writing events to a log group whose resource policy already allows it."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self.log_group = log_group

    def bind(self, _rule: events.IRule, _id: str | None = None) -> events.RuleTargetConfig:
        stack = Stack.of(self.log_group)
        arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=self.log_group.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return events.RuleTargetConfig(arn=arn)


class AlarmTopic(Construct):
    """The topic every alarm notifies: imported by ARN, or created encrypted with a CMK.

    A created topic refuses non-TLS publishing; its key lets CloudWatch (alarm actions) use it,
    limited to this account.
    """

    def __init__(self, scope: Construct, construct_id: str, *, topic_arn: str | None) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key | None = None
        if topic_arn:
            self.topic: sns.ITopic = sns.Topic.from_topic_arn(self, "Topic", topic_arn)
            return
        self.key = kms.Key(
            self,
            "Key",
            description="certplane alarm topic encryption",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="certplane alarms",
            master_key=self.key,
            enforce_ssl=True,
        )


class Monitoring(Construct):
    """Alarms (to `topic`) and the `certplane` dashboard; the `watch_*` methods add to both."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        error_rate_percent: float,
        dashboard_name: str = "certplane",
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = topic
        self.error_rate_percent = error_rate_percent
        self.alarms: list[cloudwatch.Alarm] = []
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self._dlq_metrics: list[cloudwatch.IMetric] = []
        self._error_metrics: list[cloudwatch.IMetric] = []

    def _alarm(self, construct_id: str, **props: object) -> cloudwatch.Alarm:
        """An alarm on `metric > threshold` (every certplane alarm), quiet without data unless
        `treat_missing_data` says otherwise, notifying the topic on ALARM and on OK."""
        props.setdefault(
            "comparison_operator", cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        )
        props.setdefault("treat_missing_data", cloudwatch.TreatMissingData.NOT_BREACHING)
        alarm = cloudwatch.Alarm(self, construct_id, **props)  # type: ignore[arg-type]
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm

    # -- functions ------------------------------------------------------------------------

    def watch_function(self, label: str, function: lambda_.IFunction) -> None:
        """Error rate above the threshold, and any throttling, in 2 of 3 five-minute periods."""
        errors = function.metric_errors(period=PERIOD, statistic="Sum")
        invocations = function.metric_invocations(period=PERIOD, statistic="Sum")
        rate = cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={"errors": errors, "invocations": invocations},
            label=f"{label} error %",
            period=PERIOD,
        )
        self._alarm(
            f"{label}ErrorRate",
            alarm_description=f"certplane {label}: more than {self.error_rate_percent}% of "
            "invocations failed (see docs/operations.md#function-errors)",
            metric=rate,
            threshold=self.error_rate_percent,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )
        self._alarm(
            f"{label}Throttles",
            alarm_description=f"certplane {label}: invocations throttled (reserved concurrency "
            "or account limit; see docs/operations.md#throttles)",
            metric=function.metric_throttles(period=PERIOD, statistic="Sum"),
            threshold=0,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )
        self._error_metrics.append(errors.with_(label=label))

    # -- dead-letter queues ---------------------------------------------------------------

    def watch_dead_letter_queue(self, label: str, queue: sqs.IQueue) -> None:
        """Any visible message: something could not be delivered or processed."""
        depth = queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        self._alarm(
            f"{label}Depth",
            alarm_description=f"certplane: messages in the dead-letter queue {label} "
            "(see docs/operations.md#dead-letter-queues)",
            metric=depth,
            threshold=0,
            evaluation_periods=1,
        )
        self._dlq_metrics.append(depth.with_(label=label))

    # -- evidence stream ------------------------------------------------------------------

    def watch_evidence_stream(self, stream_name: str, max_age_seconds: int) -> None:
        """Events older than `max_age_seconds` still waiting in Firehose: S3 delivery fails."""
        freshness = cloudwatch.Metric(
            namespace="AWS/Firehose",
            metric_name="DeliveryToS3.DataFreshness",
            dimensions_map={"DeliveryStreamName": stream_name},
            period=PERIOD,
            statistic="Maximum",
        )
        self._alarm(
            "EvidenceDeliveryLag",
            alarm_description="certplane: events are not reaching the evidence bucket "
            "(see docs/operations.md#evidence-delivery)",
            metric=freshness,
            threshold=max_age_seconds,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )

    # -- REST APIs ------------------------------------------------------------------------

    def watch_api(self, label: str, api: apigateway.RestApi) -> None:
        """5XX rate above the threshold in 2 of 3 periods; p99 latency on the dashboard."""
        server_errors = api.metric_server_error(period=PERIOD, statistic="Average")
        self._alarm(
            f"{label}5xx",
            alarm_description=f"certplane {label}: more than {self.error_rate_percent}% of "
            "requests answered 5XX (see docs/operations.md#api-5xx)",
            metric=server_errors,
            threshold=self.error_rate_percent / 100,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{label}: latency p99 (ms)",
                left=[api.metric_latency(period=PERIOD, statistic="p99", label="p99")],
                width=WIDGET_WIDTH,
            ),
            cloudwatch.GraphWidget(
                title=f"{label}: requests and 5XX",
                left=[api.metric_count(period=PERIOD, statistic="Sum", label="requests")],
                right=[api.metric_server_error(period=PERIOD, statistic="Sum", label="5XX")],
                width=WIDGET_WIDTH,
            ),
        )

    # -- CA engines -----------------------------------------------------------------------

    def watch_engine_unavailable(self, bus: events.IEventBus) -> events.Rule:
        """A rule keeping every "CA Unavailable" event in a log group, alarmed when it fires."""
        log_group = logs.LogGroup(
            self,
            "CaUnavailableEvents",
            # EventBridge delivers to log groups under /aws/events/.
            log_group_name=f"/aws/events/{Stack.of(self).stack_name}-ca-unavailable",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The log group's resource policy, stated here rather than by CDK's log group target
        # (which would deploy a custom-resource Lambda just to write it).
        logs.ResourcePolicy(
            self,
            "CaUnavailableEventsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[
                        iam.ServicePrincipal("events.amazonaws.com"),
                        iam.ServicePrincipal("delivery.logs.amazonaws.com"),
                    ],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            ],
        )
        rule = events.Rule(
            self,
            "CaUnavailable",
            description="certplane: a CA engine failed; the events are kept for the runbook",
            event_bus=bus,
            event_pattern=events.EventPattern(
                source=[SOURCE], detail_type=[DetailType.CA_UNAVAILABLE.value]
            ),
            targets=[LogGroupTarget(log_group)],
        )
        triggered = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="TriggeredRules",
            dimensions_map={"EventBusName": bus.event_bus_name, "RuleName": rule.rule_name},
            period=PERIOD,
            statistic="Sum",
        )
        self._alarm(
            "EngineUnavailable",
            alarm_description="certplane: a CA engine was unavailable and issuance failed over "
            "or failed (see docs/operations.md#engine-unavailable)",
            metric=triggered,
            threshold=0,
            evaluation_periods=1,
        )
        self.engine_events = log_group
        return rule

    # -- CRLs and issuance (Powertools metrics, certplane.metrics) ------------------------

    def watch_crl_publisher(self, service: str, max_age_seconds: int) -> None:
        """CRL age past the refresh margin (or no report at all), and failing CAs."""
        age = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=OLDEST_CRL_AGE,
            dimensions_map={"service": service},
            period=PERIOD,
            statistic="Maximum",
        )
        self._alarm(
            "CrlAge",
            alarm_description=f"certplane: a CRL is older than {max_age_seconds} s, or the "
            "publisher stopped reporting (see docs/operations.md#crl-age)",
            metric=age,
            threshold=max_age_seconds,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            # The publisher reports every minute: silence means it is not running.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        failures = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=CRL_PUBLISH_FAILURES,
            dimensions_map={"service": service},
            period=PERIOD,
            statistic="Sum",
        )
        self._alarm(
            "CrlPublishFailures",
            alarm_description="certplane: CRLs of a CA could not be published "
            "(see docs/operations.md#crl-age)",
            metric=failures,
            threshold=0,
            evaluation_periods=3,
            datapoints_to_alarm=2,
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="CRL age (s)",
                left=[age.with_(label="oldest CRL age (s)")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=max_age_seconds, label="alarm")
                ],
                right=[failures.with_(label="CAs failing to publish")],
                width=WIDGET_WIDTH,
            )
        )

    def show_issuance(self, services: Sequence[str]) -> None:
        """Certificates issued per minute, by front door (CertificatesIssued)."""
        per_service = [
            cloudwatch.Metric(
                namespace=NAMESPACE,
                metric_name=CERTIFICATES_ISSUED,
                dimensions_map={"service": service},
                period=Duration.minutes(1),
                statistic="Sum",
                label=service,
            )
            for service in services
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Certificates issued per minute",
                left=per_service,
                stacked=True,
                width=WIDGET_WIDTH,
            )
        )

    def finish(self) -> None:
        """The widgets gathered across calls: errors, DLQ depth, and every alarm's state."""
        if self._error_metrics:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Function errors", left=self._error_metrics, width=WIDGET_WIDTH
                )
            )
        if self._dlq_metrics:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Dead-letter queue depth", left=self._dlq_metrics, width=WIDGET_WIDTH
                )
            )
        for start in range(0, len(self.alarms), ALARMS_PER_WIDGET):
            self.dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(
                    title="Alarms",
                    alarms=self.alarms[start : start + ALARMS_PER_WIDGET],
                    width=24,
                )
            )
