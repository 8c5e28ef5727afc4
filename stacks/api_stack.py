"""The management API: the `MANAGEMENT_API` handler behind an API Gateway REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.api_stage import logged_stage
from cdk.deployed_config import DeployedConfig
from cdk.handler_function import HandlerFunction
from certplane.resources import MANAGEMENT_API


class ManagementApiStack(Stack):
    """Every route goes to one function (proxy integration); the handler does the routing.

    Callers authenticate with bearer tokens checked in the function against the Principals
    table, so the gateway itself has no authorizer yet.
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
        self.handler = HandlerFunction(
            self,
            MANAGEMENT_API.logical_id,
            spec=MANAGEMENT_API,
            tables=tables,
            bus=bus,
            config=config,
        )
        self.access_logs, stage_options = logged_stage(self)
        self.api = apigateway.LambdaRestApi(
            self,
            "Api",
            handler=self.handler.function,
            proxy=True,
            rest_api_name=self.stack_name,
            description=MANAGEMENT_API.description,
            # Regional: custom domains with mutual TLS (enrollment front doors) need it.
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # Access logging needs the account-level API Gateway CloudWatch role; create it.
            cloud_watch_role=True,
            deploy_options=stage_options,
        )
