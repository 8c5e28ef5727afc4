"""Lambda entry point of the management API (API Gateway REST proxy events)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.api import ManagementApi
from certplane.metrics import handler_metrics
from certplane.runtime import build_runtime

logger = Logger()
metrics = handler_metrics()  # CertificatesIssued
api = ManagementApi(build_runtime(metrics=metrics))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return api.handle(event, context)
