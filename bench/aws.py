"""An embedded AWS (moto, in process) with certplane's tables, for benchmarks that read them.

Fake credentials are set before any client exists, so nothing here can reach a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto import mock_aws

from certplane.resources import TABLES

REGION = "us-east-1"
_FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@contextmanager
def embedded_aws() -> Iterator[None]:
    """moto with every certplane table; the previous environment is restored afterwards."""
    saved = {name: os.environ.get(name) for name in (*_FAKE_ENVIRONMENT, "AWS_ENDPOINT_URL")}
    os.environ.update(_FAKE_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name=REGION)
            for spec in TABLES:
                client.create_table(**spec.create_table_kwargs())
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
