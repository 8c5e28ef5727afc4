"""The plain-HTTP status origin: CloudFront over the status bucket (CRLs, CA certs) and OCSP.

The paths are `certplane.status.urls`' layout, so the URLs written into certificates resolve
here exactly as they do on `certplane dev --status-port`.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.api_stage import logged_stage
from certplane.resources import OCSP

# Published objects, by the first segment of certplane.status.urls' keys.
OBJECT_PATHS = ("/crl/*", "/ca/*")


class OcspApi(Construct):
    """A REST API proxying every request to the OCSP function.

    API Gateway rather than a function URL: the handler reads the REST (payload 1.0) proxy
    event (`httpMethod`, `path`, base64 body), which a function URL does not send. Every media
    type is binary so DER requests and responses pass through untouched.
    """

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.access_logs, stage_options = logged_stage(self)
        self.api = apigateway.LambdaRestApi(
            self,
            "Api",
            handler=function,
            proxy=True,
            description=OCSP.description,
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=False,  # the management API stack owns the account-level role
            binary_media_types=["*/*"],
            deploy_options=stage_options,
        )


class StatusDistribution(Construct):
    """CloudFront with two origins: the bucket (Origin Access Control) and the OCSP API.

    Status is served over plain HTTP as well as HTTPS (ViewerProtocolPolicy.ALLOW_ALL) on
    purpose: RFC 5280 practice is `http://` CDP and AIA URLs, because a relying party checking
    a certificate's revocation must not depend on a TLS connection whose own validation needs
    revocation status (a loop). CRLs and OCSP responses are signed, so TLS adds no integrity.
    Everything outside the status paths is HTTPS-only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        ocsp_api: apigateway.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        objects = origins.S3BucketOrigin.with_origin_access_control(bucket)
        object_behavior = cloudfront.BehaviorOptions(
            origin=objects,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.ALLOW_ALL,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            # Honours the Cache-Control max-age the publisher sets (bounded by nextUpdate).
            cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            compress=False,  # DER; and clients expect the exact bytes
        )
        # OCSP GET responses are cacheable for the max-age the responder sets (bounded by
        # nextUpdate); without one nothing is cached. POST is never cached by CloudFront.
        self.ocsp_cache_policy = cloudfront.CachePolicy(
            self,
            "OcspCache",
            comment="certplane OCSP: cache GET responses for the origin's max-age",
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(0),
            max_ttl=Duration.days(7),
        )
        ocsp_behavior = cloudfront.BehaviorOptions(
            origin=origins.RestApiOrigin(ocsp_api),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.ALLOW_ALL,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,  # OCSP POST
            cache_policy=self.ocsp_cache_policy,
            # API Gateway rejects CloudFront's Host header; forward the rest (Content-Type).
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            compress=False,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="certplane status: CRLs, CA certificates, OCSP (plain HTTP allowed)",
            default_behavior=cloudfront.BehaviorOptions(
                origin=objects,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            additional_behaviors={
                **{path: object_behavior for path in OBJECT_PATHS},
                **{f"{prefix}*": ocsp_behavior for prefix in OCSP.path_prefixes},
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
