"""The AWS session the CA engines use: the CertBridge signing role when one is configured.

In AWS only the CertBridge role may sign (kms:Sign, acm-pca:IssueCertificate) or read the
engines' secrets; a function that signs holds nothing but sts:AssumeRole on it and names it
in CERTPLANE_CERTBRIDGE_ROLE_ARN. Every engine's boto3 clients come from `engine_session()`,
so its calls are made as that role, with credentials refreshed before they expire. Without
the variable (certplane dev, tests) it is the default session.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import boto3
import botocore.session
from botocore.credentials import DeferredRefreshableCredentials

ROLE_ENV = "CERTPLANE_CERTBRIDGE_ROLE_ARN"
DURATION_SECONDS = 3600  # botocore refreshes 15 minutes (advisory) / 10 minutes before expiry
_SESSION_NAME = re.compile(r"[^\w+=,.@-]")


def session_name() -> str:
    """Who assumed the role, for CloudTrail: the function's name (sanitised, ≤ 64 chars)."""
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "certplane"
    return _SESSION_NAME.sub("-", name)[:64]


def assumed_role_session(role_arn: str, base: boto3.Session | None = None) -> boto3.Session:
    """A session whose credentials are the role's, assumed lazily and refreshed as needed."""
    sts = (base or boto3.Session()).client("sts")

    def refresh() -> dict[str, Any]:
        credentials = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name(), DurationSeconds=DURATION_SECONDS
        )["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    core._credentials = DeferredRefreshableCredentials(  # the documented way to inject them
        refresh_using=refresh, method="sts-assume-role"
    )
    return boto3.Session(botocore_session=core)


@functools.cache
def _session_for(role_arn: str) -> boto3.Session:
    return assumed_role_session(role_arn)


def engine_session() -> boto3.Session:
    """The CertBridge role's session when CERTPLANE_CERTBRIDGE_ROLE_ARN is set, else default."""
    role_arn = os.environ.get(ROLE_ENV)
    if not role_arn:
        return boto3.Session()
    return _session_for(role_arn)


def engine_client(service: str, **kwargs: Any) -> Any:
    """`boto3.client(service, ...)` made from `engine_session()`."""
    return engine_session().client(service, **kwargs)
