"""Lambda entry point of the EST door (API Gateway REST proxy events, mutual TLS)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.enroll.est import EstDoor
from certplane.metrics import handler_metrics
from certplane.runtime import build_runtime

logger = Logger()
metrics = handler_metrics()  # CertificatesIssued
door = EstDoor(build_runtime(metrics=metrics))


# Never log the event: it carries Basic passwords (and responses may carry a private key).
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: LambdaContext) -> dict:
    return door.handle(event, context)
