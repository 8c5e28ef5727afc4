"""The status bucket from a `BucketSpec`: published CRLs and CA certificates, private, versioned."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from certplane.resources import BucketSpec

CLOUDFRONT_DISTRIBUTIONS = f"arn:{Aws.PARTITION}:cloudfront::{Aws.ACCOUNT_ID}:distribution/*"


class StatusBucket(Construct):
    """Private (CloudFront reads it through Origin Access Control), versioned, SSE-S3.

    SSE-S3 rather than a KMS key: the objects are public by nature (CRLs, CA certificates),
    and SSE-KMS would need the CloudFront service principal in a key policy.

    TLS-only: every request without TLS is denied, except requests CloudFront makes for a
    distribution of this account. CloudFront reaches an S3 origin with the protocol the viewer
    used, so a plain `enforce_ssl` deny would turn every plain-HTTP CRL fetch into a 403.
    `aws:SourceArn` is set only by AWS services on a service's own requests, so no user or role
    can claim the exemption; distributions still need the OAC grant to read anything.
    """

    def __init__(self, scope: Construct, construct_id: str, *, spec: BucketSpec) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            # Old CRL versions are history, not state: keep a month of them.
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyInsecureTransport",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:*"],
                resources=[self.bucket.bucket_arn, self.bucket.arn_for_objects("*")],
                conditions={
                    "Bool": {"aws:SecureTransport": "false"},
                    # A negated operator is true when the key is absent, so only CloudFront's
                    # requests for this account's distributions escape the deny.
                    "StringNotLike": {"aws:SourceArn": CLOUDFRONT_DISTRIBUTIONS},
                },
            )
        )
