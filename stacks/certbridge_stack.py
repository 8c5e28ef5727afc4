"""The CA engines + CertBridge layer: the one role that may sign.

DESIGN §1 gives kms:Sign, acm-pca:IssueCertificate and the HSM to "the CertBridge Lambda"
alone. certplane realises it as a role rather than a function: the CertBridge code runs inside
the functions that sign (`FunctionSpec.signs`), and each of them holds nothing but
sts:AssumeRole on this role, whose trust policy names exactly their roles. The engines'
permissions (`EngineGrants`, from the configuration) are attached here and nowhere else.

Built after every stack with signing functions (app.py): its trust policy refers to their
roles, while they know this role by its name only, so references run one way.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk.deployed_config import DeployedConfig
from cdk.engine_grants import EngineGrants, certbridge_role_name


class CertBridgeStack(Stack):
    """The CertBridge signing role: trusted by the signing functions' roles only."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployedConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        clients = EngineGrants.clients_in(self)
        if not clients:
            raise ValueError("no signing function was built before the CertBridge stack")
        self.clients = clients
        self.role = iam.Role(
            self,
            "SigningRole",
            role_name=certbridge_role_name(),
            description="certplane CertBridge: the only role that may sign with the CA engines",
            assumed_by=iam.CompositePrincipal(
                *(iam.ArnPrincipal(client.role_arn) for client in clients)
            ),
            max_session_duration=Duration.hours(1),
        )
        self.grants = EngineGrants(self, "EngineGrants", settings=config.settings)
        for statement in self.grants.statements:
            self.role.add_to_policy(statement)
        CfnOutput(self, "SigningRoleArn", value=self.role.role_arn)
