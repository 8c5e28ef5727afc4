"""Business metrics as CloudWatch will read them: Powertools EMF lines, parsed back from stdout.

`CertificatesIssued` counts signed certificates (issuance and renewal, not replays or refusals);
`OldestCrlAgeSeconds` and `CrlPublishFailures` describe each CRL publisher run. The alarms in
cdk/monitoring.py are built on exactly these names, and the age threshold on
`crl_age_alarm_seconds`.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.errors import CertplaneError
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.metrics import (
    CERTIFICATES_ISSUED,
    CRL_PUBLISH_FAILURES,
    OLDEST_CRL_AGE,
    NoMetrics,
    handler_metrics,
)
from certplane.resources import CRL_PUBLISHER
from certplane.status.crl import crl_age_alarm_seconds
from tests.conftest import CsrFactory, LifecycleFactory
from tests.service.test_status import Status, status  # noqa: F401 (the fixture)

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")
NAMESPACE = "certplane-test"


def emitted(capsys: pytest.CaptureFixture[str], metrics: Metrics) -> dict[str, Any]:
    """Flush `metrics` and read back the one EMF document it printed: {name: (unit, values)}."""
    capsys.readouterr()
    metrics.flush_metrics()
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    document = json.loads(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    found = {}
    for definition in directive["Metrics"]:
        value = document[definition["Name"]]
        found[definition["Name"]] = (
            definition["Unit"],
            value if isinstance(value, list) else [value],
        )
    return found


@pytest.fixture
def metrics() -> Metrics:
    recorder = Metrics(namespace=NAMESPACE, service="tests")
    recorder.clear_metrics()
    yield recorder
    recorder.clear_metrics()


def test_certificates_issued_counts_issue_and_renew_only(
    make_lifecycle: LifecycleFactory,
    local_engine: LocalCAEngine,
    csrs: CsrFactory,
    metrics: Metrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings.load()
    lifecycle = make_lifecycle(settings, {"local-dev": local_engine})
    lifecycle.metrics = metrics
    issued = lifecycle.issue(
        IssueRequest(tenant="default", profile="device", csr=csrs.pem(), requester="t")
    )
    lifecycle.renew(RenewRequest(tenant="default", reference=issued.serial, requester="t"))
    with pytest.raises(CertplaneError):  # refused by policy: nothing signed, nothing counted
        lifecycle.issue(
            IssueRequest(tenant="default", profile="no-such", csr=csrs.pem(), requester="t")
        )
    assert emitted(capsys, metrics) == {CERTIFICATES_ISSUED: ("Count", [1.0, 1.0])}


def test_crl_publisher_reports_oldest_age_and_failures(
    status: Status,  # noqa: F811
    metrics: Metrics,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = status.publisher
    status.clock.now = status.clock.now.replace(microsecond=0)  # CRLs are dated to the second
    publisher.publish_due()
    publisher.report(metrics)
    assert emitted(capsys, metrics) == {
        OLDEST_CRL_AGE: ("Seconds", [0.0]),
        CRL_PUBLISH_FAILURES: ("Count", [0.0]),
    }

    status.clock.now += datetime.timedelta(hours=15)  # nothing due yet: every CRL is 15 h old
    assert publisher.publish_due() == []
    publisher.report(metrics)
    assert emitted(capsys, metrics)[OLDEST_CRL_AGE] == ("Seconds", [15 * 3600.0])

    # Signing breaks past the refresh point: the run carries on, the age keeps growing.
    status.clock.now += datetime.timedelta(hours=6)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("CA engine down")

    monkeypatch.setattr(publisher, "_build", broken)
    assert publisher.publish_due() == []
    publisher.report(metrics)
    found = emitted(capsys, metrics)
    assert found[CRL_PUBLISH_FAILURES] == ("Count", [1.0])
    assert found[OLDEST_CRL_AGE] == ("Seconds", [21 * 3600.0])
    assert found[OLDEST_CRL_AGE][1][0] > crl_age_alarm_seconds(Settings.load())

    monkeypatch.undo()
    assert publisher.publish_due()  # repaired: everything due is published again
    publisher.report(metrics)
    assert emitted(capsys, metrics) == {
        OLDEST_CRL_AGE: ("Seconds", [0.0]),
        CRL_PUBLISH_FAILURES: ("Count", [0.0]),
    }


def test_alarm_threshold_is_inside_the_refresh_margin() -> None:
    settings = Settings.load()  # 24 h validity, refreshed 8 h before nextUpdate
    assert crl_age_alarm_seconds(settings) == 20 * 3600
    assert 16 * 3600 < crl_age_alarm_seconds(settings) < 24 * 3600


def test_handler_metrics_only_inside_lambda() -> None:
    assert isinstance(handler_metrics({}), NoMetrics)
    assert isinstance(handler_metrics({"AWS_LAMBDA_FUNCTION_NAME": "f"}), Metrics)

    def handler(event: dict, context: object) -> dict:
        return {"echo": event}

    none = NoMetrics()
    assert none.log_metrics(handler) is handler
    assert none.log_metrics(capture_cold_start_metric=True)(handler) is handler
    none.add_metric(name=CERTIFICATES_ISSUED, unit="Count", value=1)  # type: ignore[arg-type]


def test_lambda_metrics_carry_the_namespace_and_service_alarms_select(
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = CRL_PUBLISHER.environment["POWERTOOLS_SERVICE_NAME"]
    recorder = handler_metrics(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "CertplaneStatus-CrlPublisher",
            "POWERTOOLS_METRICS_NAMESPACE": "certplane",
            "POWERTOOLS_SERVICE_NAME": service,
        }
    )
    assert isinstance(recorder, Metrics)
    recorder.clear_metrics()
    recorder.add_metric(name=OLDEST_CRL_AGE, unit="Seconds", value=12)
    capsys.readouterr()
    recorder.flush_metrics()
    document = json.loads(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "certplane"
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == service and document[OLDEST_CRL_AGE] in (12.0, [12.0])
