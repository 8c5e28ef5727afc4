"""A DynamoDB table built from a `TableSpec`: the same keys, indexes and TTL as `certplane dev`."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from certplane.resources import KeySpec, TableSpec

# `KeySpec.type` holds DynamoDB's wire letters; the CDK enum spells them out.
_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


def _optional_attribute(key: KeySpec | None) -> dynamodb.Attribute | None:
    return None if key is None else _attribute(key)


class InventoryTable(Construct):
    """A stateful table: on-demand, PITR, deletion protection, retained, own KMS key.

    The physical name is left to CloudFormation (so stages can share an account and the table
    can be replaced safely); code finds it through `spec.env_var`, exactly as in dev mode.
    """

    def __init__(self, scope: Construct, construct_id: str, *, spec: TableSpec) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        # A key of our own (not the AWS-owned default) so access to the data can be audited and
        # revoked in KMS independently of DynamoDB permissions.
        self.key = kms.Key(
            self,
            "Key",
            description=f"certplane {spec.logical_id} table encryption",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_attribute(spec.partition_key),
            sort_key=_optional_attribute(spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
            time_to_live_attribute=spec.ttl_attribute,
        )
        for index in spec.indexes:
            if index.projection == "INCLUDE":
                # IndexSpec carries no non-key attribute list, so INCLUDE cannot be honoured.
                raise ValueError(f"{spec.logical_id}.{index.name}: INCLUDE projection unsupported")
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_optional_attribute(index.sort_key),
                projection_type=dynamodb.ProjectionType[index.projection],
            )
