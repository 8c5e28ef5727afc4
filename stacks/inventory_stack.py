"""The lifecycle layer's state: every table in `certplane.resources.TABLES`."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from cdk.inventory_table import InventoryTable
from certplane.resources import TABLES


class InventoryStack(Stack):
    """Stateful and long-lived, so it sits apart from the stacks that are redeployed often."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.inventory_tables = {
            spec.logical_id: InventoryTable(self, spec.logical_id, spec=spec) for spec in TABLES
        }
        for logical_id, table in self.inventory_tables.items():
            # Operators' tools (`certplane credentials`) find the generated names here.
            CfnOutput(self, f"{logical_id}TableName", value=table.table.table_name)

    @property
    def tables(self) -> dict[str, dynamodb.ITable]:
        """Tables by spec logical id, the shape `HandlerFunction` and `environment()` expect."""
        return {logical_id: t.table for logical_id, t in self.inventory_tables.items()}
