"""The evidence bucket: every certplane event, written once and kept unalterable for audits.

The bus archive serves replay but cannot be handed to an auditor or queried with Athena, and
anything with `events:*` rights can delete it. Here a rule on the bus sends every certplane
event through Firehose (batched, gzipped) into a bucket with S3 Object Lock: versions cannot
be deleted or overwritten before their retention ends, and Firehose may only add objects.
`certplane dev` keeps the same record as `events.jsonl` in its home.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

# Object Lock default retention (governance mode: only a principal granted
# s3:BypassGovernanceRetention can shorten it). Audits of PKI operations commonly ask for a year.
EVIDENCE_RETENTION = Duration.days(400)
# Firehose flushes at whichever comes first: evidence is in S3 within 5 minutes.
BUFFER_INTERVAL = Duration.minutes(5)
BUFFER_MEGABYTES = 64


class EvidenceStore(Construct):
    """Bus rule → Firehose → Object-Locked, KMS-encrypted, TLS-only, private bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        source: str,
        retention: Duration = EVIDENCE_RETENTION,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="certplane evidence bucket encryption",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(retention),
            removal_policy=RemovalPolicy.RETAIN,
        )

        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"),
            description="Firehose: add certplane evidence objects (no read-back, no delete)",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects("*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                resources=[self.bucket.bucket_arn],
            )
        )
        self.key.grant(role, "kms:GenerateDataKey", "kms:Decrypt")

        # Named, so the rule and its role address it by a formatted ARN (no attribute reads).
        self.stream_name = stream_name = f"{Stack.of(self).stack_name}-evidence"
        self.stream_arn = Stack.of(self).format_arn(
            service="firehose", resource="deliverystream", resource_name=stream_name
        )
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_name=stream_name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=(
                firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                    key_type="AWS_OWNED_CMK"
                )
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix="events/!{timestamp:yyyy/MM/dd}/",
                error_output_prefix="errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=int(BUFFER_INTERVAL.to_seconds()),
                    size_in_m_bs=BUFFER_MEGABYTES,
                ),
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=self.key.key_arn
                    )
                ),
            ),
        )
        self.stream.node.add_dependency(role)

        # L1 rule: the L2 Firehose import would add an unused region → CIDR mapping.
        events_role = iam.Role(
            self,
            "EventsRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="EventBridge: put certplane events into the evidence stream only",
        )
        events_role.add_to_policy(
            iam.PolicyStatement(
                actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
                resources=[self.stream_arn],
            )
        )
        self.rule = events.CfnRule(
            self,
            "Rule",
            event_bus_name=bus.event_bus_name,
            description=f"Every event with source {source!r} into the evidence bucket",
            event_pattern={"source": [source]},
            targets=[
                events.CfnRule.TargetProperty(
                    id="EvidenceStream", arn=self.stream_arn, role_arn=events_role.role_arn
                )
            ],
        )
        self.rule.add_resource_dependency(self.stream)
