"""A Lambda function built from a `FunctionSpec`: handler by name, least-privilege grants."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.dependencies_layer import DependenciesLayer
from cdk.deployed_config import PATH_IN_LAMBDA, ConfigLayer, DeployedConfig
from cdk.engine_grants import EngineGrants
from cdk.function_role import function_role
from certplane import resources
from certplane.resources import FunctionSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = Duration.seconds(20)  # under API Gateway's 29 s integration timeout

# Everything in the repository that the Lambda runtime does not need, in .gitignore syntax: a
# leading "/" anchors a pattern to the repository root, so "/app.py" spares certplane/api/app.py.
# Deploy tooling (cdk/, stacks/, app.py) is excluded so editing a stack keeps the code's hash.
ASSET_EXCLUDES = (
    "/.venv",
    "/.git",
    "/.ci",
    "/tests",
    "/docs",
    "/cdk.out",
    "/node_modules",
    "/cdk",
    "/stacks",
    "/app.py",
    "/cdk.json",
    ".ruff_cache",
    ".pytest_cache",
    ".mypy_cache",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".env",
)

POWERTOOLS_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "certplane",
    "POWERTOOLS_METRICS_NAMESPACE": "certplane",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def function_code() -> lambda_.Code:
    """The repository's own packages as one asset, built without docker.

    Third-party dependencies (pynamodb, powertools, cryptography, ...) come from the stack's
    `DependenciesLayer` (pip for arm64 / CPython 3.12, no docker), so that editing the code
    leaves the dependencies' asset alone.
    """
    return lambda_.Code.from_asset(
        str(REPO_ROOT), exclude=list(ASSET_EXCLUDES), ignore_mode=IgnoreMode.GIT
    )


class HandlerFunction(Construct):
    """One handler from `certplane.resources.FUNCTIONS`, with only the access its spec lists.

    `tables` maps table logical ids to tables; every table's physical name goes into the
    environment (via `resources.environment`, the same mapping `certplane dev` uses), but data
    access is granted only for the tables the spec names. `buckets` does the same for buckets
    (a bucket not passed keeps its default name in the environment).

    `config` is shipped as the stack's config layer and named by CERTPLANE_CONFIG; a spec that
    `signs` also gets exactly the permissions the configured CA engines need (EngineGrants).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        tables: Mapping[str, dynamodb.ITable],
        bus: events.IEventBus,
        config: DeployedConfig,
        buckets: Mapping[str, s3.IBucket] | None = None,
        memory_size: int = 512,
        timeout: Duration = DEFAULT_TIMEOUT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        reserved_concurrency: int = 0,
        async_dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        """`reserved_concurrency` caps (and reserves) concurrent instances, 0 = unreserved; an
        `async_dead_letter_queue` receives asynchronous invocations that failed every attempt."""
        super().__init__(scope, construct_id)
        self.spec = spec
        missing = [t.logical_id for t in spec.tables if t.logical_id not in tables]
        if missing:
            raise ValueError(f"{spec.logical_id} needs tables not passed in: {missing}")
        buckets = dict(buckets or {})
        missing = [b.logical_id for b in spec.read_write_buckets if b.logical_id not in buckets]
        if missing:
            raise ValueError(f"{spec.logical_id} needs buckets not passed in: {missing}")

        names = {logical_id: table.table_name for logical_id, table in tables.items()}
        names.update({logical_id: bucket.bucket_name for logical_id, bucket in buckets.items()})
        names[resources.EVENT_BUS.logical_id] = bus.event_bus_name
        environment = {
            **POWERTOOLS_DEFAULTS,
            **resources.environment(names),
            resources.CONFIG_ENV: PATH_IN_LAMBDA,
            **spec.environment,
        }

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=spec.handler,
            code=function_code(),
            environment=environment,
            memory_size=memory_size,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency or None,
            dead_letter_queue=async_dead_letter_queue,
            role=function_role(self, "Role", self.log_group),
            layers=[DependenciesLayer.of(self).layer, ConfigLayer.of(self, config).layer],
        )

        for table_spec in spec.read_write_tables:
            tables[table_spec.logical_id].grant_read_write_data(self.function)
        for table_spec in spec.read_tables:
            tables[table_spec.logical_id].grant_read_data(self.function)
        if spec.puts_events:
            bus.grant_put_events_to(self.function)
        for bucket_spec in spec.read_write_buckets:
            # Objects only: no List, no Delete, no bucket configuration.
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[buckets[bucket_spec.logical_id].arn_for_objects("*")],
                )
            )
        if spec.signs:
            EngineGrants.of(self, config.settings).grant_to(self.function)
