"""Enrollment front doors: the Certifier API and EST handlers behind one REST API.

Each function answers the path prefixes its spec names (the same prefixes the dev front
routes on). A custom domain with a mutual-TLS truststore (for EST client certificates) comes
with the deployment issue; until then client certificates reach EST only through `certplane dev`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.api_stage import logged_stage
from cdk.concurrency import concurrency_for
from cdk.deployed_config import DeployedConfig
from cdk.handler_function import HandlerFunction
from certplane.resources import CERTIFIER_API, EST, FunctionSpec

ENROLLMENT_FUNCTIONS: tuple[FunctionSpec, ...] = (CERTIFIER_API, EST)


class EnrollmentStack(Stack):
    """One function per door; the gateway routes each spec's path prefixes to its function."""

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
        self.handlers = {
            spec.logical_id: HandlerFunction(
                self,
                spec.logical_id,
                spec=spec,
                tables=tables,
                bus=bus,
                config=config,
                reserved_concurrency=concurrency_for(self, spec, config.settings),
            )
            for spec in ENROLLMENT_FUNCTIONS
        }
        self.access_logs, stage_options = logged_stage(self)
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=self.stack_name,
            description="certplane enrollment (xPKI Certifier API, EST)",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # The management API stack owns the account-level CloudWatch role.
            cloud_watch_role=False,
            binary_media_types=["application/pkcs10", "application/pkcs7-mime"],
            deploy_options=stage_options,
        )
        for spec in ENROLLMENT_FUNCTIONS:
            integration = apigateway.LambdaIntegration(self.handlers[spec.logical_id].function)
            for prefix in spec.path_prefixes:
                resource = self.api.root
                for part in prefix.strip("/").split("/"):
                    resource = resource.get_resource(part) or resource.add_resource(part)
                resource.add_proxy(default_integration=integration, any_method=True)
