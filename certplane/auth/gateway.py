"""Callers API Gateway already authenticated: a Cognito JWT's claims or a SigV4 IAM identity.

With `management_auth = jwt` or `iam` (CDK context) the gateway verifies the caller before the
function runs and passes what it verified in `requestContext`; the function then only maps that
to a tenant and roles. The mode reaches the function in CERTPLANE_API_AUTH: if the mode says
the gateway authenticated but the context lacks it (a misrouted or hand-made event), the
caller is refused, never treated as anonymous or as a token caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from certplane.auth.credentials import Principal
from certplane.config import ApiAuthSettings, ApiPrincipal
from certplane.errors import Forbidden, Unauthorized

API_AUTH_ENV = "CERTPLANE_API_AUTH"
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$"
)
_ROLE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<role>[^/]+)$"
)
MAX_ROLES = 50


class AuthMode(StrEnum):
    """Who authenticates management API callers."""

    TOKEN = "token"  # the function, against the Principals table (bearer tokens)
    JWT = "jwt"  # API Gateway's Cognito user pools authorizer
    IAM = "iam"  # API Gateway's IAM (SigV4) authorization


def auth_mode(environ: Mapping[str, str]) -> AuthMode:
    """The mode the stack set; unset means tokens. An unknown value fails the cold start."""
    value = (environ.get(API_AUTH_ENV) or AuthMode.TOKEN.value).strip().lower()
    try:
        return AuthMode(value)
    except ValueError:
        raise ValueError(
            f"{API_AUTH_ENV}={value!r}; expected one of {[m.value for m in AuthMode]}"
        ) from None


def _request_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


def _tenant(value: Any) -> str:
    if not isinstance(value, str) or not _TENANT.match(value):
        raise Forbidden("no_tenant", "the caller's identity names no valid tenant")
    return value


def _claim_values(value: Any) -> list[str]:
    """List claims reach a REST authorizer context as strings: "[a, b]", "a,b" or "a b"."""
    if isinstance(value, list):
        return [str(item) for item in value]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part for part in text.replace(",", " ").split() if part]


def jwt_principal(event: Mapping[str, Any], settings: ApiAuthSettings) -> Principal:
    """The tenant from `settings.tenant_claim`, roles from the roles claims (groups, scopes)."""
    authorizer = _request_context(event).get("authorizer")
    claims = authorizer.get("claims") if isinstance(authorizer, Mapping) else None
    if not isinstance(claims, Mapping) or not claims.get("sub"):
        raise Unauthorized("unauthorized", "the gateway passed no verified token claims")
    tenant = _tenant(claims.get(settings.tenant_claim))
    roles = [role for claim in settings.roles_claims for role in _claim_values(claims.get(claim))]
    name = str(claims.get("username") or claims.get("cognito:username") or claims["sub"])
    return Principal(
        tenant=tenant,
        name=f"jwt:{name}"[:256],
        roles=tuple(dict.fromkeys(roles[:MAX_ROLES])) or tuple(settings.default_roles),
    )


def _matches(configured: ApiPrincipal, caller_arn: str) -> bool:
    if configured.arn == caller_arn:
        return True
    assumed, role = _ASSUMED_ROLE.match(caller_arn), _ROLE.match(configured.arn)
    return bool(
        assumed
        and role
        and assumed.group("partition", "account", "role")
        == role.group("partition", "account", "role")
    )


def iam_principal(event: Mapping[str, Any], settings: ApiAuthSettings) -> Principal:
    """The configured `[[api_auth.iam_principals]]` entry matching the caller's ARN."""
    identity = _request_context(event).get("identity")
    caller_arn = identity.get("userArn") if isinstance(identity, Mapping) else None
    if not isinstance(caller_arn, str) or not caller_arn.startswith("arn:"):
        raise Unauthorized("unauthorized", "the gateway passed no verified IAM identity")
    for configured in settings.iam_principals:
        if _matches(configured, caller_arn):
            return Principal(
                tenant=configured.tenant,
                name=configured.name or caller_arn,
                roles=tuple(configured.roles),
            )
    raise Forbidden("unknown_principal", "this IAM identity is not mapped to a tenant")


def gateway_principal(
    event: Mapping[str, Any], mode: AuthMode, settings: ApiAuthSettings
) -> Principal:
    """The caller the gateway authenticated (mode jwt or iam)."""
    if mode is AuthMode.JWT:
        return jwt_principal(event, settings)
    if mode is AuthMode.IAM:
        return iam_principal(event, settings)
    raise ValueError("bearer tokens are checked by the function, not the gateway")
