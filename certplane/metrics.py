"""Business metrics the core records: names, units and where they go.

The core records through the small `MetricsSink` protocol; inside Lambda that is Powertools
`Metrics` (CloudWatch embedded metric format, flushed by the handler's `log_metrics`), so the
dashboard and alarms (cdk/monitoring.py) read namespace `certplane`. Elsewhere (`certplane dev`,
tests that do not look at metrics) nothing is recorded: EMF lines on a laptop's stdout are noise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "certplane"  # POWERTOOLS_METRICS_NAMESPACE of every function (cdk/handler_function)
# Certificates signed and recorded ISSUED (issuance and renewal alike), per function (service).
CERTIFICATES_ISSUED = "CertificatesIssued"
# Age of the oldest CRL the publisher is responsible for, after each run (seconds).
OLDEST_CRL_AGE = "OldestCrlAgeSeconds"
# CAs whose CRLs could not be published in a run (the run itself carries on with the others).
CRL_PUBLISH_FAILURES = "CrlPublishFailures"


class MetricsSink(Protocol):
    """What the core needs of a metrics library (Powertools `Metrics` has this shape)."""

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None: ...


class NoMetrics:
    """Records nothing; `log_metrics` passes the handler through unchanged."""

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        return None

    def log_metrics(self, lambda_handler=None, **_options):  # type: ignore[no-untyped-def]
        if lambda_handler is None:
            return lambda handler: handler
        return lambda_handler


def handler_metrics(environ: Mapping[str, str] = os.environ) -> Metrics | NoMetrics:
    """Powertools `Metrics` inside Lambda; `NoMetrics` elsewhere (`certplane dev`)."""
    if "AWS_LAMBDA_FUNCTION_NAME" in environ:
        # The `service` dimension is the function's POWERTOOLS_SERVICE_NAME: alarms select by it.
        return Metrics(
            namespace=environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE,
            service=environ.get("POWERTOOLS_SERVICE_NAME"),
        )
    return NoMetrics()
