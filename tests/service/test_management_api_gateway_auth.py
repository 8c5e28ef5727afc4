"""The management API behind a gateway that authenticates (management_auth = jwt | iam).

Events are the dev front's proxy events (API Gateway's shape) with the `requestContext` parts
API Gateway adds after its Cognito or IAM authorizer: `authorizer.claims` or `identity.userArn`.
Tenant isolation is checked end to end against moto: a certificate issued for one tenant is
invisible to a caller of the other.
"""

from __future__ import annotations

import json
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import pytest

from certbridge.engines.local import LocalCAEngine
from certplane.api import ManagementApi
from certplane.auth import CredentialStore
from certplane.auth.gateway import API_AUTH_ENV, AuthMode, auth_mode
from certplane.config import DEFAULT_CONFIG, Settings
from certplane.dev.front import proxy_event
from certplane.dev.lambda_host import DevLambdaContext
from certplane.runtime import Runtime
from tests.conftest import CsrFactory, LifecycleFactory

ROLE_ARN = "arn:aws:iam::123456789012:role/ops/fleet-operator"
USER_ARN = "arn:aws:iam::123456789012:user/beta-admin"
EXTRA = f"""
[[tenants]]
id = "beta"
profiles = ["device"]

[api_auth]
tenant_claim = "custom:org"

[[api_auth.iam_principals]]
arn = "{ROLE_ARN}"
tenant = "default"
name = "fleet-operator"

[[api_auth.iam_principals]]
arn = "{USER_ARN}"
tenant = "beta"
roles = ["auditor"]
"""


@pytest.fixture
def settings_two_tenants() -> Settings:
    text = package_files.files("certplane").joinpath(DEFAULT_CONFIG).read_text()
    return Settings.from_toml(text + EXTRA)


def _api(
    mode: AuthMode,
    settings: Settings,
    make_lifecycle: LifecycleFactory,
    local_engine: LocalCAEngine,
    tmp_path: Path,
) -> ManagementApi:
    pqc = LocalCAEngine("local-pqc", tmp_path / "ca-local-pqc", algorithm="ML-DSA-65")
    runtime = Runtime(
        settings=settings,
        lifecycle=make_lifecycle(settings, {"local-dev": local_engine, "local-pqc": pqc}),
        credentials=CredentialStore(),
    )
    return ManagementApi(runtime, auth=mode)


def call(
    api: ManagementApi,
    method: str,
    path: str,
    body: Any = None,
    *,
    claims: dict[str, str] | None = None,
    user_arn: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    payload = json.dumps(body).encode() if body is not None else b""
    event = proxy_event(
        method, path, {"Content-Type": "application/json", **(headers or {})}, payload, "10.0.0.1"
    )
    if claims is not None:
        event["requestContext"]["authorizer"] = {"claims": claims}
    if user_arn is not None:
        event["requestContext"]["identity"]["userArn"] = user_arn
        event["requestContext"]["identity"]["caller"] = "AROAEXAMPLE:session"
    response = api.handle(event, DevLambdaContext(function_name="test"))
    assert response["statusCode"] < 500, response
    return response["statusCode"], json.loads(response["body"])


def _claims(tenant: str | None, sub: str = "7d3f", **extra: str) -> dict[str, str]:
    claims = {"sub": sub, "cognito:username": f"user-{sub}", "token_use": "id", **extra}
    if tenant is not None:
        claims["custom:org"] = tenant
    return claims


def test_jwt_tenant_isolation(
    settings_two_tenants: Settings,
    make_lifecycle: LifecycleFactory,
    local_engine: LocalCAEngine,
    tmp_path: Path,
    csrs: CsrFactory,
) -> None:
    api = _api(AuthMode.JWT, settings_two_tenants, make_lifecycle, local_engine, tmp_path)
    alice = _claims("default", "a1", **{"cognito:groups": "[admin, ops]"})
    bob = _claims("beta", "b2")

    status, issued = call(
        api,
        "POST",
        "/v1/certificates",
        {"profile": "device", "csr": csrs.pem(common_name="dev-1")},
        claims=alice,
    )
    assert status == 201, issued
    assert issued["requester"] == "jwt:user-a1"

    status, seen = call(api, "GET", f"/v1/certificates/{issued['serial']}", claims=alice)
    assert status == 200 and seen["serial"] == issued["serial"]

    # Tenant beta can neither read, list nor revoke tenant default's certificate.
    status, body = call(api, "GET", f"/v1/certificates/{issued['serial']}", claims=bob)
    assert status == 404, body
    status, listing = call(api, "GET", "/v1/certificates", claims=bob)
    assert status == 200 and listing["items"] == []
    status, body = call(
        api,
        "POST",
        f"/v1/certificates/{issued['serial']}/revoke",
        {"reason": "keyCompromise"},
        claims=bob,
    )
    assert status == 404, body
    status, seen = call(api, "GET", f"/v1/certificates/{issued['serial']}", claims=alice)
    assert seen["status"] == "ISSUED"


def test_jwt_refusals_are_clean_4xx(
    settings_two_tenants: Settings,
    make_lifecycle: LifecycleFactory,
    local_engine: LocalCAEngine,
    tmp_path: Path,
) -> None:
    api = _api(AuthMode.JWT, settings_two_tenants, make_lifecycle, local_engine, tmp_path)
    # No authorizer context at all, even with a bearer header: refused (no token fallback).
    token = api.runtime.credentials.create_token("default", "alice")
    status, body = call(api, "GET", "/v1/profiles", headers={"Authorization": f"Bearer {token}"})
    assert status == 401 and body["error"]["code"] == "unauthorized"
    # Claims without the tenant claim, or naming a malformed tenant: authenticated, forbidden.
    status, body = call(api, "GET", "/v1/profiles", claims=_claims(None))
    assert status == 403 and body["error"]["code"] == "no_tenant"
    status, body = call(api, "GET", "/v1/profiles", claims=_claims("Beta Corp!"))
    assert status == 403
    # A tenant nobody configured sees nothing (profiles are per tenant).
    status, body = call(api, "GET", "/v1/profiles", claims=_claims("ghost"))
    assert status == 200 and body["items"] == []
    status, body = call(api, "GET", "/v1/profiles", claims=_claims("beta"))
    assert status == 200 and [p["name"] for p in body["items"]] == ["device"]
    # Public paths need nothing.
    assert call(api, "GET", "/health")[0] == 200
    assert call(api, "GET", "/v1/openapi.json")[0] == 200


def test_iam_principals_map_to_tenants(
    settings_two_tenants: Settings,
    make_lifecycle: LifecycleFactory,
    local_engine: LocalCAEngine,
    tmp_path: Path,
    csrs: CsrFactory,
) -> None:
    api = _api(AuthMode.IAM, settings_two_tenants, make_lifecycle, local_engine, tmp_path)
    assumed = "arn:aws:sts::123456789012:assumed-role/fleet-operator/ci-run-42"
    status, issued = call(
        api,
        "POST",
        "/v1/certificates",
        {"profile": "device", "csr": csrs.pem(common_name="dev-iam")},
        user_arn=assumed,
    )
    assert status == 201, issued
    assert issued["requester"] == "fleet-operator"

    status, body = call(api, "GET", f"/v1/certificates/{issued['serial']}", user_arn=USER_ARN)
    assert status == 404, body  # beta's IAM user cannot see default's certificate

    for stranger in (
        "arn:aws:sts::999999999999:assumed-role/fleet-operator/x",  # other account
        "arn:aws:sts::123456789012:assumed-role/fleet-operator-2/x",  # other role
        "arn:aws:iam::123456789012:user/fleet-operator",  # a user, not the role
    ):
        status, body = call(api, "GET", "/v1/profiles", user_arn=stranger)
        assert status == 403 and body["error"]["code"] == "unknown_principal", stranger
    status, body = call(api, "GET", "/v1/profiles")
    assert status == 401
    # JWT claims do not count in IAM mode.
    status, body = call(api, "GET", "/v1/profiles", claims=_claims("default"))
    assert status == 401


def test_auth_mode_from_environment() -> None:
    assert auth_mode({}) is AuthMode.TOKEN
    assert auth_mode({API_AUTH_ENV: "JWT"}) is AuthMode.JWT
    assert auth_mode({API_AUTH_ENV: "iam"}) is AuthMode.IAM
    with pytest.raises(ValueError, match="expected one of"):
        auth_mode({API_AUTH_ENV: "cognito"})


def test_iam_principal_of_unknown_tenant_is_a_config_error() -> None:
    text = package_files.files("certplane").joinpath(DEFAULT_CONFIG).read_text()
    with pytest.raises(ValueError, match="unknown tenant"):
        Settings.from_toml(
            text + f'[[api_auth.iam_principals]]\narn = "{USER_ARN}"\ntenant = "nobody"\n'
        )
