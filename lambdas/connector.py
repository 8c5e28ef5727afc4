"""Lambda entry point of one connector (SQS event source with ReportBatchItemFailures).

Configured by environment, set by the stack from the `[[connectors]]` entry:
CERTPLANE_CONNECTOR_NAME, CERTPLANE_CONNECTOR_TYPE, CERTPLANE_CONNECTOR_URL,
CERTPLANE_CONNECTOR_SECRET_ID (Secrets Manager id; the secret never sits in the environment),
CERTPLANE_CONNECTOR_OPTIONS (JSON object), CERTPLANE_CONNECTOR_QUEUE_URL and _DLQ_URL.
"""

import json
import os
from functools import cache

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from connectors.batch import ConnectorBatch
from connectors.registry import build_connector

logger = Logger()
SECRET_MAX_AGE = 300  # seconds: a rotated secret is picked up within five minutes


@cache
def _batch() -> ConnectorBatch:
    secret_id = os.environ.get("CERTPLANE_CONNECTOR_SECRET_ID")
    secret = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE) if secret_id else None
    connector = build_connector(
        os.environ["CERTPLANE_CONNECTOR_TYPE"],
        os.environ.get("CERTPLANE_CONNECTOR_URL") or None,
        secret,
        json.loads(os.environ.get("CERTPLANE_CONNECTOR_OPTIONS") or "{}"),
    )
    return ConnectorBatch(
        connector,
        sqs=boto3.client("sqs"),
        queue_url=os.environ.get("CERTPLANE_CONNECTOR_QUEUE_URL"),
        dlq_url=os.environ.get("CERTPLANE_CONNECTOR_DLQ_URL"),
        name=os.environ.get("CERTPLANE_CONNECTOR_NAME", ""),
    )


# Never log the event: bodies are certificate events, fine, but keep logs to outcomes.
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    return _batch()(event, context)
