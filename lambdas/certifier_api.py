"""Lambda entry point of the xPKI Certifier-compatible API (API Gateway REST proxy events)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.enroll.certifier import CertifierApi
from certplane.metrics import handler_metrics
from certplane.runtime import build_runtime

logger = Logger()
metrics = handler_metrics()  # CertificatesIssued
api = CertifierApi(build_runtime(metrics=metrics))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return api.handle(event, context)
