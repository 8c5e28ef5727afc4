"""Connectors against local stand-ins of their targets (tests/connector_targets.py)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator

import pytest
import requests

from certplane.config import Settings
from certplane.events import DetailType
from connectors.base import CertplaneEvent, Connector, PermanentDelivery, RetryableDelivery
from connectors.batch import REASON_ATTRIBUTE, ConnectorBatch
from connectors.github import GitHubDispatchConnector
from connectors.http import HttpSender, parse_retry_after, raise_for_outcome
from connectors.pagerduty import PagerDutyConnector
from connectors.registry import build_connector
from connectors.routing import connector_route, event_pattern
from connectors.slack import SlackConnector
from connectors.splunk import SplunkHecConnector
from connectors.webhook import WebhookConnector, decode_secret
from tests.connector_targets import (
    GitHubReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    SplunkReceiver,
    WebhookReceiver,
    certificate,
    detail,
    envelope,
    verify_standard_webhook,
)


def event(detail_type: DetailType, tenant: str = "acme", **body) -> CertplaneEvent:
    return CertplaneEvent.from_envelope(envelope(detail_type, detail(detail_type, tenant, **body)))


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# -- events and HTTP outcomes ------------------------------------------------------------


def test_an_envelope_that_is_not_a_valid_certplane_event_is_permanent() -> None:
    good = envelope(DetailType.ISSUED, detail(DetailType.ISSUED))
    assert CertplaneEvent.from_envelope(json.dumps(good)).event_id == good["detail"]["eventId"]
    for broken in (
        {**good, "source": "someone-else"},
        {**good, "detail-type": "Certificate Sneezed"},
        {**good, "detail": {**good["detail"], "tenant": "Not A Tenant"}},
        {**good, "detail": {**good["detail"], "privateKey": "-----BEGIN PRIVATE KEY-----"}},
        "not json",
    ):
        with pytest.raises(PermanentDelivery):
            CertplaneEvent.from_envelope(broken if isinstance(broken, str) else json.dumps(broken))


def _response(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = b"body"
    return response


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_retryable(status: int) -> None:
    with pytest.raises(RetryableDelivery) as raised:
        raise_for_outcome(_response(status, {"Retry-After": "12"}), "t")
    assert raised.value.retry_after == 12


@pytest.mark.parametrize("status", [301, 400, 401, 404, 410, 422])
def test_other_answers_are_permanent(status: int) -> None:
    with pytest.raises(PermanentDelivery):
        raise_for_outcome(_response(status), "t")


def test_a_rate_limited_403_is_retryable() -> None:
    with pytest.raises(RetryableDelivery):
        raise_for_outcome(_response(403, {"x-ratelimit-remaining": "0"}), "t")


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after("999999") == 3600


def test_an_unreachable_target_is_retryable_and_never_goes_through_a_proxy(monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    receiver = WebhookReceiver()
    try:
        sender = HttpSender()
        connector = WebhookConnector(receiver.url, receiver.secret, sender=sender)
        connector.deliver(event(DetailType.ISSUED))  # the proxy variable is ignored
        assert sum(receiver.accepted.values()) == 1
        receiver.target.down()
        with pytest.raises(RetryableDelivery, match="cannot connect"):
            connector.deliver(event(DetailType.ISSUED))
    finally:
        receiver.close()


# -- Standard Webhooks -------------------------------------------------------------------


def test_webhook_signature_verifies_with_an_independent_implementation(webhook) -> None:
    connector = WebhookConnector(webhook.url, webhook.secret)
    issued = event(DetailType.ISSUED)
    connector.deliver(issued)
    assert webhook.failures == []
    (request,) = webhook.target.requests
    assert request.headers["webhook-id"] == issued.event_id
    assert request.headers["webhook-signature"].startswith("v1,")
    document = json.loads(request.body)
    assert document["type"] == "certificate.issued"
    assert document["timestamp"] == issued.occurred_at
    assert document["data"]["eventId"] == issued.event_id
    assert document["data"]["certificate"] == issued.detail["certificate"]
    # The same bytes with another timestamp, another secret or a re-serialized body fail.
    headers = dict(request.headers)
    now = int(headers["webhook-timestamp"])
    verify_standard_webhook(webhook.secret, headers, request.body, now)
    for bad in (
        lambda: verify_standard_webhook(webhook.secret, headers, request.body, now + 301),
        lambda: verify_standard_webhook(webhook.secret, headers, request.body, now - 301),
        lambda: verify_standard_webhook(
            webhook.secret, headers, json.dumps(document, indent=1).encode(), now
        ),
        lambda: verify_standard_webhook(
            "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            headers,
            request.body,
            now,
        ),
    ):
        with pytest.raises(ValueError):
            bad()


def test_webhook_signs_with_each_secret_while_a_receiver_rotates(webhook) -> None:
    old = webhook.secret
    new = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    WebhookConnector(webhook.url, f"{new} {old}").deliver(event(DetailType.RENEWED))
    (request,) = webhook.target.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    now = int(request.headers["webhook-timestamp"])
    verify_standard_webhook(new, request.headers, request.body, now)
    verify_standard_webhook(old, request.headers, request.body, now)


def test_webhook_secrets_must_be_whsec_base64_of_24_to_64_bytes() -> None:
    assert len(decode_secret("whsec_" + base64.b64encode(bytes(24)).decode())) == 24
    for bad in ("plain", "whsec_!!!", "whsec_" + base64.b64encode(bytes(8)).decode()):
        with pytest.raises(ValueError):
            decode_secret(bad)


def test_webhook_outcomes_follow_the_receiver(webhook) -> None:
    connector = WebhookConnector(webhook.url, webhook.secret)
    webhook.mode, webhook.retry_after = "429", "30"
    with pytest.raises(RetryableDelivery) as raised:
        connector.deliver(event(DetailType.ISSUED))
    assert raised.value.retry_after == 30
    webhook.mode = "503"
    with pytest.raises(RetryableDelivery):
        connector.deliver(event(DetailType.ISSUED))
    webhook.mode = "ok"
    with pytest.raises(PermanentDelivery, match="HTTP 401"):
        WebhookConnector(webhook.url, "whsec_" + base64.b64encode(bytes(32)).decode()).deliver(
            event(DetailType.ISSUED)
        )


# -- Slack -------------------------------------------------------------------------------


def test_slack_posts_block_kit_with_fallback_text_for_every_event_type() -> None:
    receiver = SlackReceiver()
    try:
        connector = SlackConnector(None, receiver.url)  # the webhook URL is the secret
        for detail_type in (
            DetailType.ISSUED,
            DetailType.RENEWED,
            DetailType.REVOKED,
            DetailType.ISSUANCE_FAILED,
            DetailType.EXPIRING,
            DetailType.CA_UNAVAILABLE,
        ):
            connector.deliver(event(detail_type))
        assert len(receiver.messages) == 6
        expiring = receiver.messages[4]
        assert "7 days left" in expiring["text"] and "[acme]" in expiring["text"]
        assert expiring["blocks"][0]["type"] == "header"
        long_subject = event(DetailType.ISSUED, certificate=certificate("d" * 5000))
        connector.deliver(long_subject)  # clipped to Block Kit's limits, still accepted
        assert len(receiver.messages) == 7
    finally:
        receiver.close()


def test_slack_throttling_is_retryable_with_retry_after_and_bad_urls_are_permanent() -> None:
    receiver = SlackReceiver(throttle=1)
    try:
        with pytest.raises(RetryableDelivery) as raised:
            SlackConnector(None, receiver.url).deliver(event(DetailType.ISSUED))
        assert raised.value.retry_after == 1
        with pytest.raises(PermanentDelivery, match="no_service") as raised:
            SlackConnector(None, receiver.target.url + "/services/T/B/revoked").deliver(
                event(DetailType.ISSUED)
            )
        assert "/services/" not in str(raised.value)  # the URL is a secret: never in reasons
    finally:
        receiver.close()


# -- PagerDuty ---------------------------------------------------------------------------


def test_pagerduty_triggers_on_key_compromise_and_resolves_on_renewal() -> None:
    receiver = PagerDutyReceiver()
    try:
        connector = PagerDutyConnector(receiver.url, receiver.routing_key)
        compromised = certificate("device-7", status="REVOKED")
        revoked = event(DetailType.REVOKED, certificate=compromised)
        connector.deliver(revoked)
        connector.deliver(revoked)  # a redelivery collapses into the same alert
        (key,) = receiver.alerts
        assert receiver.triggers[key] == 2 and key.endswith(compromised["certificateId"])
        trigger = receiver.events[0]
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["custom_details"]["eventId"] == revoked.event_id
        connector.deliver(
            event(DetailType.RENEWED, previousCertificate={**compromised, "status": "SUPERSEDED"})
        )
        assert receiver.alerts[key] == "resolved"
    finally:
        receiver.close()


def test_pagerduty_one_alert_per_condition() -> None:
    receiver = PagerDutyReceiver()
    try:
        connector = PagerDutyConnector(receiver.url, receiver.routing_key)
        for _ in range(5):  # a failure spike for one profile: one alert
            connector.deliver(event(DetailType.ISSUANCE_FAILED))
        connector.deliver(event(DetailType.CA_UNAVAILABLE))
        connector.deliver(event(DetailType.CA_UNAVAILABLE, tenant="other"))
        superseded = certificate(status="REVOKED")
        connector.deliver(
            event(
                DetailType.REVOKED,
                certificate=superseded,
                revocation={"reason": "superseded", "revokedAt": "2026-12-04T10:00:00Z"},
            )
        )
        connector.deliver(event(DetailType.ISSUED))  # not an incident
        assert sorted(receiver.triggers.values()) == [1, 1, 5]
        assert any("/issuance-failed/device" in key for key in receiver.alerts)
        assert {e["payload"]["severity"] for e in receiver.events} == {"critical", "error"}
    finally:
        receiver.close()


def test_pagerduty_rejects_a_bad_routing_key_permanently() -> None:
    receiver = PagerDutyReceiver()
    try:
        with pytest.raises(PermanentDelivery, match="invalid event"):
            PagerDutyConnector(receiver.url, "0" * 32).deliver(event(DetailType.CA_UNAVAILABLE))
    finally:
        receiver.close()


# -- registry, routing, configuration, batch ---------------------------------------------


def test_registry_builds_each_type_and_refuses_unknown_ones() -> None:
    secret = "whsec_" + base64.b64encode(bytes(32)).decode()
    assert isinstance(build_connector("webhook", "http://x/", secret), Connector)
    assert build_connector("slack", None, "http://x/").type_name == "slack"
    assert build_connector("pagerduty", None, "k" * 32, {"source": "pki"}).type_name == "pagerduty"
    assert (
        build_connector("splunk", "https://hec:8088", "t", {"index": "pki"}).type_name == "splunk"
    )
    assert build_connector("github", "https://api.github.com/repos/a/b", "t").type_name == "github"
    with pytest.raises(ValueError, match="unknown connector type"):
        build_connector("carrier-pigeon", None, None)


def test_route_pattern_selects_source_types_tenant_and_filters() -> None:
    route = connector_route(
        "acme-soc",
        "acme",
        ["Certificate Revoked", "CA Unavailable"],
        {"revocation.reason": ["keyCompromise"], "certificate.profile": [{"prefix": "dev"}]},
    )
    assert route.queue_name == "certplane-connector-acme-soc"
    assert route.dlq_name == "certplane-connector-acme-soc-dlq"
    assert route.pattern == {
        "source": ["certplane"],
        "detail-type": ["Certificate Revoked", "CA Unavailable"],
        "detail": {
            "tenant": ["acme"],
            "revocation": {"reason": ["keyCompromise"]},
            "certificate": {"profile": [{"prefix": "dev"}]},
        },
    }
    for bad in ({"tenant": ["other"]}, {"a..b": [1]}):
        with pytest.raises(ValueError):
            event_pattern("acme", ["Certificate Issued"], bad)
    with pytest.raises(ValueError):
        event_pattern("acme", ["Certificate Sneezed"])
    with pytest.raises(ValueError):
        connector_route("Bad Name", "acme", ["Certificate Issued"])


CONFIG_TAIL = """
[[connectors]]
name = "acme-hooks"
tenant = "default"
type = "webhook"
url = "https://hooks.example.com/certplane"
secret = "certplane/acme/webhook"
events = ["Certificate Issued", "Certificate Renewed"]
filters = {"certificate.profile" = ["device"]}
"""


def _settings_text(tail: str) -> str:
    from importlib import resources

    return resources.files("certplane").joinpath("defaults/certplane.toml").read_text() + tail


def test_connectors_are_configured_per_tenant_with_a_secret_reference(tmp_path, monkeypatch):
    settings = Settings.from_toml(_settings_text(CONFIG_TAIL))
    (connector,) = settings.connectors
    assert connector.events == ["Certificate Issued", "Certificate Renewed"]
    assert connector.local_secret() is None  # resolved from Secrets Manager when deployed
    for broken in (
        CONFIG_TAIL.replace('tenant = "default"', 'tenant = "nobody"'),
        CONFIG_TAIL.replace('"Certificate Renewed"', '"Certificate Sneezed"'),
        CONFIG_TAIL.replace('"certplane/acme/webhook"', '"whsec_AAAA"'),  # the secret itself
        CONFIG_TAIL + CONFIG_TAIL,  # duplicate name
    ):
        with pytest.raises(ValueError):
            Settings.from_toml(_settings_text(broken))
    monkeypatch.setenv("ACME_HOOK_SECRET", "whsec_local")
    local = Settings.from_toml(
        _settings_text(CONFIG_TAIL.replace('secret = "', 'secret_env = "ACME_HOOK_SECRET"\n#"'))
    )
    assert local.connectors[0].local_secret() == "whsec_local"


class RecordingSqs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def change_message_visibility(self, **kwargs) -> None:
        self.calls.append(("change_message_visibility", kwargs))

    def send_message(self, **kwargs) -> None:
        self.calls.append(("send_message", kwargs))


class Scripted:
    type_name = "scripted"

    def __init__(self, outcome: Exception | None) -> None:
        self.outcome = outcome

    def deliver(self, event: CertplaneEvent) -> None:
        if self.outcome:
            raise self.outcome


def _sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"r{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "3"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def test_batch_honours_retry_after_and_backs_off_otherwise() -> None:
    body = json.dumps(envelope(DetailType.ISSUED, detail(DetailType.ISSUED)))
    sqs = RecordingSqs()
    batch = ConnectorBatch(Scripted(RetryableDelivery("busy", 42)), sqs=sqs, queue_url="q")
    assert batch(_sqs_event(body), None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert sqs.calls == [
        (
            "change_message_visibility",
            {"QueueUrl": "q", "ReceiptHandle": "r0", "VisibilityTimeout": 42},
        )
    ]
    sqs.calls.clear()
    ConnectorBatch(Scripted(RetryableDelivery("busy")), sqs=sqs, queue_url="q")(
        _sqs_event(body), None
    )
    ((_, call),) = sqs.calls
    assert 32 <= call["VisibilityTimeout"] <= 48  # 10 s * 2^(3-1), ±20 %


def test_batch_parks_permanent_failures_in_the_dlq_with_their_reason() -> None:
    good = json.dumps(envelope(DetailType.ISSUED, detail(DetailType.ISSUED)))
    sqs = RecordingSqs()
    batch = ConnectorBatch(
        Scripted(PermanentDelivery("HTTP 400: nope")), sqs=sqs, dlq_url="dlq", name="n"
    )
    assert batch(_sqs_event(good, "garbage"), None) == {"batchItemFailures": []}
    reasons = [call["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] for _, call in sqs.calls]
    assert reasons[0] == "HTTP 400: nope" and "not an EventBridge certplane event" in reasons[1]
    # Without a DLQ to write to, the record fails so the redrive policy takes it there.
    no_dlq = ConnectorBatch(Scripted(PermanentDelivery("x")))
    assert no_dlq(_sqs_event(good), None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


# -- Splunk HEC --------------------------------------------------------------------------


def test_splunk_batches_events_as_concatenated_objects_with_the_splunk_scheme() -> None:
    receiver = SplunkReceiver()
    try:
        connector = SplunkHecConnector(receiver.target.url, receiver.token, index="pki")
        batch = ConnectorBatch(connector)
        bodies = [
            json.dumps(envelope(DetailType.ISSUED, detail(DetailType.ISSUED))) for _ in range(5)
        ]
        assert batch(_sqs_event(*bodies), None) == {"batchItemFailures": []}
        assert receiver.requests == 1 and len(receiver.events) == 5  # one request for five
        first = receiver.events[0]
        assert isinstance(first["time"], float) and first["index"] == "pki"
        assert first["fields"]["event_id"] == first["event"]["eventId"]
        assert first["event"]["detailType"] == "Certificate Issued"
    finally:
        receiver.close()


def test_splunk_outcomes_busy_retries_and_a_wrong_token_or_index_is_permanent() -> None:
    receiver = SplunkReceiver(busy=1)
    try:
        with pytest.raises(RetryableDelivery, match="Server is busy"):
            SplunkHecConnector(receiver.target.url, receiver.token).deliver(
                event(DetailType.ISSUED)
            )
        with pytest.raises(PermanentDelivery, match="Invalid token"):
            SplunkHecConnector(receiver.target.url, "nope").deliver(event(DetailType.ISSUED))
        with pytest.raises(PermanentDelivery, match="Incorrect index"):
            SplunkHecConnector(receiver.target.url, receiver.token, index="x").deliver(
                event(DetailType.ISSUED)
            )
    finally:
        receiver.close()


def test_a_refused_splunk_batch_is_retried_one_by_one_to_isolate_the_bad_event() -> None:
    class PickyHec(SplunkHecConnector):
        def deliver_many(self, events) -> None:
            if any(e.certificate and e.certificate["subject"] == "CN=bad" for e in events):
                raise PermanentDelivery("HTTP 400: Invalid data format")
            super().deliver_many(events)

    receiver = SplunkReceiver()
    try:
        sqs = RecordingSqs()
        batch = ConnectorBatch(
            PickyHec(receiver.target.url, receiver.token), sqs=sqs, dlq_url="dlq"
        )
        bodies = [
            json.dumps(envelope(DetailType.ISSUED, detail(DetailType.ISSUED, certificate=c)))
            for c in (certificate("a"), certificate("bad"), certificate("b"))
        ]
        assert batch(_sqs_event(*bodies, "garbage"), None) == {"batchItemFailures": []}
        assert len(receiver.events) == 2
        parked = [call["MessageBody"] for name, call in sqs.calls if name == "send_message"]
        assert parked[0] == "garbage" and "CN=bad" in parked[1] and len(parked) == 2
    finally:
        receiver.close()


# -- GitHub repository_dispatch ----------------------------------------------------------


def test_github_dispatches_with_event_type_and_a_small_client_payload() -> None:
    receiver = GitHubReceiver()
    try:
        connector = GitHubDispatchConnector(receiver.url, receiver.token)
        renewed = event(DetailType.RENEWED)
        connector.deliver(renewed)
        (dispatch,) = receiver.dispatches
        assert dispatch["event_type"] == "certplane.certificate.renewed"
        assert dispatch["client_payload"]["event_id"] == renewed.event_id
        assert len(dispatch["client_payload"]) <= 10
        (request,) = receiver.target.requests
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        with pytest.raises(PermanentDelivery, match="Bad credentials"):
            GitHubDispatchConnector(receiver.url, "wrong").deliver(renewed)
        with pytest.raises(PermanentDelivery, match="HTTP 404"):
            GitHubDispatchConnector(
                receiver.target.url + "/repos/acme/other", receiver.token
            ).deliver(renewed)
    finally:
        receiver.close()


def test_connectors_depend_on_the_event_schema_only() -> None:
    """DESIGN.md §1: connectors/ → certplane.events, never another certplane module."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "connectors"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.split(".")[0] in ("certplane", "certbridge", "lambdas", "cdk", "stacks"):
                    assert name == "certplane.events", f"{path.name} imports {name}"
