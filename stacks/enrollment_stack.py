"""Enrollment front doors: the Certifier API and EST handlers behind one REST API.

Each function answers the path prefixes its spec names (the same prefixes the dev front
routes on). With context `enrollment_domain_name` (cdk/deploy_context.py) the API gets a
custom domain with mutual TLS: API Gateway checks device certificates against the truststore
and passes them to EST in `requestContext.identity.clientCert`; the execute-api endpoint is
then disabled so no client can reach the doors without the TLS handshake (docs/enrollment.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.api_stage import logged_stage
from cdk.concurrency import concurrency_for
from cdk.deploy_context import EnrollmentDomain, enrollment_domain
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
        self.domain_config = enrollment_domain(self)
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
            # Behind an mTLS domain, the default endpoint would be a way around the truststore.
            disable_execute_api_endpoint=self.domain_config is not None,
        )
        for spec in ENROLLMENT_FUNCTIONS:
            integration = apigateway.LambdaIntegration(self.handlers[spec.logical_id].function)
            for prefix in spec.path_prefixes:
                resource = self.api.root
                for part in prefix.strip("/").split("/"):
                    resource = resource.get_resource(part) or resource.add_resource(part)
                resource.add_proxy(default_integration=integration, any_method=True)
        self.domain = (
            self._mtls_domain(self.domain_config) if self.domain_config is not None else None
        )

    def _mtls_domain(self, config: EnrollmentDomain) -> apigateway.DomainName:
        """The regional custom domain with mutual TLS, mapped to this API's stage."""
        bucket_name, _, key = config.truststore_uri.removeprefix("s3://").partition("/")
        domain = apigateway.DomainName(
            self,
            "Domain",
            domain_name=config.domain_name,
            certificate=acm.Certificate.from_certificate_arn(
                self, "Certificate", config.certificate_arn
            ),
            endpoint_type=apigateway.EndpointType.REGIONAL,
            security_policy=apigateway.SecurityPolicy.TLS_1_2,
            mtls=apigateway.MTLSConfig(
                bucket=s3.Bucket.from_bucket_name(self, "Truststore", bucket_name),
                key=key,
                version=config.truststore_version,
            ),
        )
        domain.add_base_path_mapping(self.api, stage=self.api.deployment_stage)
        CfnOutput(
            self,
            "EnrollmentDomainTarget",
            value=domain.domain_name_alias_domain_name,
            description=f"Point {config.domain_name} here (CNAME, or a Route 53 alias with "
            "EnrollmentDomainZone)",
        )
        CfnOutput(self, "EnrollmentDomainZone", value=domain.domain_name_alias_hosted_zone_id)
        return domain
