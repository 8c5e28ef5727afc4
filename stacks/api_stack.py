"""The management API: the `MANAGEMENT_API` handler behind an API Gateway REST API.

Who authenticates callers is CDK context `management_auth` (cdk/deploy_context.py):
`token` (default) leaves it to the function (bearer tokens in the Principals table); `jwt`
puts a Cognito user pools authorizer on every method, `iam` requires SigV4 on every method.
Either way /health and /v1/openapi.json stay public, and the function learns the mode from
CERTPLANE_API_AUTH so it trusts the gateway's verdict (certplane/auth/gateway.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.api_stage import logged_stage
from cdk.concurrency import concurrency_for
from cdk.deploy_context import ManagementAuth, management_auth
from cdk.deployed_config import DeployedConfig
from cdk.handler_function import HandlerFunction
from certplane.api.app import PUBLIC_PATHS
from certplane.auth.gateway import API_AUTH_ENV, AuthMode
from certplane.resources import MANAGEMENT_API


class ManagementApiStack(Stack):
    """Every route goes to one function (proxy integration); the handler does the routing."""

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
            reserved_concurrency=concurrency_for(self, MANAGEMENT_API, config.settings),
        )
        self.auth = management_auth(self)
        self.handler.function.add_environment(API_AUTH_ENV, self.auth.mode.value)
        self.user_pool: cognito.IUserPool | None = None
        self.access_logs, stage_options = logged_stage(self)
        self.api = apigateway.LambdaRestApi(
            self,
            "Api",
            handler=self.handler.function,
            proxy=False,
            rest_api_name=self.stack_name,
            description=MANAGEMENT_API.description,
            # Regional: custom domains with mutual TLS (enrollment front doors) need it.
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # Access logging needs the account-level API Gateway CloudWatch role; create it.
            cloud_watch_role=True,
            deploy_options=stage_options,
        )
        # The routes of a proxy API (ANY / and ANY /{proxy+}), guarded by the authorizer...
        guarded = self._method_options(self.auth)
        self.api.root.add_method("ANY", **_options(guarded))
        self.api.root.add_proxy(any_method=True, default_method_options=guarded)
        # ...except the public paths, which the function also lets through unauthenticated.
        # A static parent they need (/v1) would shadow /{proxy+} for its other children, so it
        # gets its own guarded {proxy+}.
        for path in sorted(PUBLIC_PATHS):
            resource = self.api.root
            for part in path.strip("/").split("/")[:-1]:
                parent = resource.get_resource(part)
                if parent is None:
                    parent = resource.add_resource(part)
                    parent.add_proxy(any_method=True, default_method_options=guarded)
                resource = parent
            resource.add_resource(path.rsplit("/", 1)[-1]).add_method(
                "GET", authorization_type=apigateway.AuthorizationType.NONE
            )

    def _method_options(self, auth: ManagementAuth) -> apigateway.MethodOptions | None:
        if auth.mode is AuthMode.IAM:
            return apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM)
        if auth.mode is AuthMode.JWT:
            self.user_pool = (
                cognito.UserPool.from_user_pool_arn(self, "UserPool", auth.user_pool_arn)
                if auth.user_pool_arn
                else ManagementUserPool(self, "Users").user_pool
            )
            authorizer = apigateway.CognitoUserPoolsAuthorizer(
                self, "Authorizer", cognito_user_pools=[self.user_pool]
            )
            return apigateway.MethodOptions(
                authorizer=authorizer, authorization_type=apigateway.AuthorizationType.COGNITO
            )
        return None


class ManagementUserPool(Construct):
    """A Cognito user pool for operators when `management_auth=jwt` names none.

    Administrators create users (no self sign-up) and set `custom:tenant`; the app client may
    read it but not write it, so a user cannot move themselves to another tenant. TOTP MFA is
    required, threat protection enforced. Roles come from Cognito groups (`cognito:groups`).
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "Pool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            custom_attributes={"tenant": cognito.StringAttribute(min_len=1, max_len=63)},
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            deletion_protection=True,
            # Plus: threat protection (compromised credentials, adaptive authentication) in
            # full-function mode; a handful of operators costs cents a month.
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
        )
        self.client = self.user_pool.add_client(
            "Cli",
            auth_flows=cognito.AuthFlow(user_srp=True),
            prevent_user_existence_errors=True,
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes("tenant"),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
        )
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.client.user_pool_client_id)


def _options(options: apigateway.MethodOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    return {"authorizer": options.authorizer, "authorization_type": options.authorization_type}
