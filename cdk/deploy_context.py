"""Deployment choices read from CDK context (`cdk synth -c key=value` or cdk.json "context").

What is about the account (authorizers, domains, alarm topics, concurrency) lives here; what
the functions must also know (tenants, profiles, engines, claim names) lives in the TOML
configuration. Values given with `-c` arrive as strings, so each key is parsed leniently
(numbers, JSON objects) and validated strictly: a typo fails the synth, not the deploy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from constructs import Construct

from certplane.auth.gateway import AuthMode

MANAGEMENT_AUTH = "management_auth"
JWT_USER_POOL_ARN = "jwt_user_pool_arn"
RESERVED_CONCURRENCY = "reserved_concurrency"
ALARM_TOPIC_ARN = "alarm_topic_arn"
ALARM_ERROR_RATE_PERCENT = "alarm_error_rate_percent"
ENROLLMENT_DOMAIN_NAME = "enrollment_domain_name"
ENROLLMENT_CERTIFICATE_ARN = "enrollment_certificate_arn"
ENROLLMENT_TRUSTSTORE_URI = "enrollment_truststore_uri"
ENROLLMENT_TRUSTSTORE_VERSION = "enrollment_truststore_version"

_USER_POOL_ARN = re.compile(r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[\w-]+_\w+$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$")
_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")


def _get(scope: Construct, key: str) -> Any:
    value = scope.node.try_get_context(key)
    return None if value in (None, "") else value


def _text(scope: Construct, key: str, pattern: re.Pattern[str]) -> str | None:
    value = _get(scope, key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"context {key}={value!r} is not valid")
    return value


@dataclass(frozen=True)
class ManagementAuth:
    """Who authenticates management API callers, and (jwt) which user pool signs their JWTs."""

    mode: AuthMode
    user_pool_arn: str | None = None  # jwt only; None: the stack creates a user pool


def management_auth(scope: Construct) -> ManagementAuth:
    raw = str(_get(scope, MANAGEMENT_AUTH) or AuthMode.TOKEN.value).lower()
    try:
        mode = AuthMode(raw)
    except ValueError:
        raise ValueError(
            f"context {MANAGEMENT_AUTH}={raw!r}; expected one of {[m.value for m in AuthMode]}"
        ) from None
    pool = _text(scope, JWT_USER_POOL_ARN, _USER_POOL_ARN)
    if pool and mode is not AuthMode.JWT:
        raise ValueError(f"context {JWT_USER_POOL_ARN} needs {MANAGEMENT_AUTH}=jwt")
    return ManagementAuth(mode=mode, user_pool_arn=pool)


def reserved_concurrency(scope: Construct, defaults: Mapping[str, int]) -> dict[str, int]:
    """Per function logical id: `defaults`, overridden by context (a JSON object); 0 = none."""
    raw = _get(scope, RESERVED_CONCURRENCY) or {}
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"context {RESERVED_CONCURRENCY} must map function ids to numbers")
    merged = dict(defaults)
    for function_id, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
            raise ValueError(f"context {RESERVED_CONCURRENCY}.{function_id}={value!r}: 0..1000")
        merged[str(function_id)] = value
    return merged


def alarm_topic_arn(scope: Construct) -> str | None:
    return _text(scope, ALARM_TOPIC_ARN, _SNS_ARN)


def alarm_error_rate_percent(scope: Construct, default: float = 5.0) -> float:
    value = float(_get(scope, ALARM_ERROR_RATE_PERCENT) or default)
    if not 0 < value <= 100:
        raise ValueError(f"context {ALARM_ERROR_RATE_PERCENT}={value}: 0 < percent <= 100")
    return value


@dataclass(frozen=True)
class EnrollmentDomain:
    """The enrollment API's custom domain, with the mutual-TLS truststore devices chain to."""

    domain_name: str
    certificate_arn: str
    truststore_uri: str
    truststore_version: str | None = None


def enrollment_domain(scope: Construct) -> EnrollmentDomain | None:
    """The domain if `enrollment_domain_name` is set (then certificate and truststore too)."""
    name = _text(scope, ENROLLMENT_DOMAIN_NAME, _DOMAIN)
    certificate = _text(scope, ENROLLMENT_CERTIFICATE_ARN, _ACM_ARN)
    truststore = _text(scope, ENROLLMENT_TRUSTSTORE_URI, _S3_URI)
    version = _get(scope, ENROLLMENT_TRUSTSTORE_VERSION)
    if name is None:
        if certificate or truststore or version:
            raise ValueError(
                f"context {ENROLLMENT_DOMAIN_NAME} is needed for the enrollment domain"
            )
        return None
    if certificate is None or truststore is None:
        raise ValueError(
            f"context {ENROLLMENT_DOMAIN_NAME} needs {ENROLLMENT_CERTIFICATE_ARN} and "
            f"{ENROLLMENT_TRUSTSTORE_URI}"
        )
    return EnrollmentDomain(name, certificate, truststore, str(version) if version else None)
