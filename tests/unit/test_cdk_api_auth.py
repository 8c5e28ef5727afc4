"""The management API's gateway authorization for each `management_auth` context value.

Synthesizes only the stacks the API needs (inventory, events, API) once per mode, from the
packaged configuration, and checks the methods' AuthorizationType, the authorizer, the
function's CERTPLANE_API_AUTH and that the public paths stay unauthenticated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import create_app, deployed_config
from certplane.api.app import PUBLIC_PATHS
from certplane.auth.gateway import API_AUTH_ENV
from stacks.api_stack import ManagementApiStack
from stacks.events_stack import EventsStack
from stacks.inventory_stack import InventoryStack

POOL_ARN = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf123"


def synth(tmp_path: Path, **context: Any) -> Template:
    app = create_app(outdir=str(tmp_path), context=context)
    env = cdk.Environment(account="123456789012", region="eu-west-1")
    inventory = InventoryStack(app, "Inventory", env=env)
    events = EventsStack(app, "Events", env=env)
    api = ManagementApiStack(
        app,
        "Api",
        tables=inventory.tables,
        bus=events.bus,
        config=deployed_config(app),
        env=env,
    )
    return Template.from_stack(api)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    return {
        "token": synth(tmp_path_factory.mktemp("token")),
        "jwt-created": synth(tmp_path_factory.mktemp("jwt"), management_auth="jwt"),
        "jwt-imported": synth(
            tmp_path_factory.mktemp("jwt2"), management_auth="jwt", jwt_user_pool_arn=POOL_ARN
        ),
        "iam": synth(tmp_path_factory.mktemp("iam"), management_auth="iam"),
    }


def _paths(template: Template) -> dict[str, str]:
    """Resource logical id -> full path ("/v1/openapi.json"), root as "/"."""
    resources = template.find_resources("AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in resources:
            return ""
        props = resources[logical_id]["Properties"]
        parent = props["ParentId"]
        parent_id = parent.get("Ref") if isinstance(parent, dict) else None
        return f"{path_of(parent_id) if parent_id else ''}/{props['PathPart']}"

    for logical_id in resources:
        paths[logical_id] = path_of(logical_id)
    return paths


def methods(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, HTTP method) -> the method's properties."""
    paths = _paths(template)
    found = {}
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = paths[resource["Ref"]] if "Ref" in resource else "/"
        found[(path, props["HttpMethod"])] = props
    return found


# /v1/{proxy+}: the static /v1 (parent of /v1/openapi.json) would otherwise shadow /{proxy+}.
EXPECTED_ROUTES = {("/", "ANY"), ("/{proxy+}", "ANY"), ("/v1/{proxy+}", "ANY")} | {
    (p, "GET") for p in PUBLIC_PATHS
}


@pytest.mark.parametrize(
    ("key", "authorization"),
    [("token", "NONE"), ("jwt-created", "COGNITO_USER_POOLS"), ("iam", "AWS_IAM")],
)
def test_guarded_and_public_methods(
    templates: dict[str, Template], key: str, authorization: str
) -> None:
    found = methods(templates[key])
    assert set(found) == EXPECTED_ROUTES
    for route, props in found.items():
        expected = "NONE" if route[1] == "GET" else authorization
        assert props["AuthorizationType"] == expected, route
        assert props["Integration"]["Type"] == "AWS_PROXY", route
        assert ("AuthorizerId" in props) == (expected == "COGNITO_USER_POOLS"), route


@pytest.mark.parametrize("key", ["token", "jwt-created", "jwt-imported", "iam"])
def test_function_learns_the_mode(templates: dict[str, Template], key: str) -> None:
    functions = templates[key].find_resources(
        "AWS::Lambda::Function",
        {"Properties": {"Handler": "lambdas.management_api.handler"}},
    )
    (function,) = functions.values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[API_AUTH_ENV] == key.split("-")[0]


def test_jwt_authorizer_with_created_pool(templates: dict[str, Template]) -> None:
    template = templates["jwt-created"]
    (authorizer,) = template.find_resources("AWS::ApiGateway::Authorizer").values()
    props = authorizer["Properties"]
    assert props["Type"] == "COGNITO_USER_POOLS"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    (pool_id,) = template.find_resources("AWS::Cognito::UserPool")
    assert props["ProviderARNs"] == [{"Fn::GetAtt": [pool_id, "Arn"]}]
    pool = template.find_resources("AWS::Cognito::UserPool")[pool_id]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["MfaConfiguration"] == "ON"
    assert pool["UserPoolTier"] == "PLUS"
    assert pool["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
    assert any(a["Name"] == "tenant" for a in pool["Schema"])
    (client,) = template.find_resources("AWS::Cognito::UserPoolClient").values()
    # The tenant is readable by the app client but never writable by the user.
    assert "custom:tenant" in client["Properties"]["ReadAttributes"]
    assert "custom:tenant" not in client["Properties"]["WriteAttributes"]


def test_jwt_authorizer_with_imported_pool(templates: dict[str, Template]) -> None:
    template = templates["jwt-imported"]
    assert template.find_resources("AWS::Cognito::UserPool") == {}
    (authorizer,) = template.find_resources("AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["ProviderARNs"] == [POOL_ARN]


@pytest.mark.parametrize("key", ["token", "iam"])
def test_no_authorizer_or_pool_outside_jwt(templates: dict[str, Template], key: str) -> None:
    assert templates[key].find_resources("AWS::ApiGateway::Authorizer") == {}
    assert templates[key].find_resources("AWS::Cognito::UserPool") == {}


@pytest.mark.parametrize(
    "context",
    [
        {"management_auth": "cognito"},
        {"management_auth": "iam", "jwt_user_pool_arn": POOL_ARN},
        {"management_auth": "jwt", "jwt_user_pool_arn": "userpool/eu-west-1_x"},
    ],
)
def test_bad_context_fails_the_synth(tmp_path: Path, context: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="context"):
        synth(tmp_path, **context)
