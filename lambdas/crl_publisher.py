"""Lambda entry point of the CRL publisher (invoked every minute by EventBridge Scheduler)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.metrics import handler_metrics
from certplane.runtime import build_runtime
from certplane.status.service import build_status

logger = Logger()
metrics = handler_metrics()
publisher = build_status(build_runtime()).crl


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    published = publisher.publish_due()
    publisher.report(metrics)  # OldestCrlAgeSeconds, CrlPublishFailures (alarmed)
    return {"published": [{"ca": p.ca_id, "shard": p.shard, "number": p.number} for p in published]}
