"""`certplane dev` connectors: configured in TOML, provisioned in moto, delivered in process."""

from __future__ import annotations

import json
import time
from importlib import resources

from certplane.config import Settings
from certplane.dev.connectors import DevConnectors
from certplane.events import DetailType, EventPublisher
from connectors.batch import REASON_ATTRIBUTE
from tests.connector_targets import PagerDutyReceiver, WebhookReceiver, certificate, detail


def _settings(tail: str) -> Settings:
    text = resources.files("certplane").joinpath("defaults/certplane.toml").read_text()
    return Settings.from_toml(text + tail)


def test_configured_connectors_get_their_events_and_outlive_an_outage(aws, monkeypatch):
    hooks, pager = WebhookReceiver(), PagerDutyReceiver()
    try:
        monkeypatch.setenv("DEV_HOOK_SECRET", hooks.secret)
        aws.session.client("secretsmanager").create_secret(
            Name="certplane/default/pagerduty", SecretString=pager.routing_key
        )
        settings = _settings(f"""
[[connectors]]
name = "default-hooks"
tenant = "default"
type = "webhook"
url = "{hooks.url}"
secret_env = "DEV_HOOK_SECRET"
events = ["Certificate Issued", "Certificate Revoked"]
filters = {{"certificate.profile" = ["device"]}}

[[connectors]]
name = "default-pager"
tenant = "default"
type = "pagerduty"
url = "{pager.url}"
secret = "certplane/default/pagerduty"
events = ["Certificate Revoked", "CA Unavailable"]
""")
        dev = DevConnectors(
            settings.connectors,
            sqs=aws.sqs,
            events=aws.events,
            secrets=aws.session.client("secretsmanager"),
            bus_name=aws.bus_name,
        )
        publisher = EventPublisher(aws.events, aws.bus_name)
        issued = detail(DetailType.ISSUED, tenant="default")
        revoked = detail(DetailType.REVOKED, tenant="default")
        server_cert = detail(
            DetailType.ISSUED, tenant="default", certificate=certificate(profile="server")
        )
        hooks.target.down()
        for detail_type, value in (
            (DetailType.ISSUED, issued),
            (DetailType.REVOKED, revoked),
            (DetailType.ISSUED, server_cert),  # filtered out by profile
            (DetailType.ISSUED, detail(DetailType.ISSUED, tenant="other")),  # other tenant
        ):
            publisher.publish(detail_type, value)
        assert dev.deliver_pending() == 1  # PagerDuty took the revocation; the hook is down
        assert list(pager.triggers.values()) == [1]
        hooks.target.up()
        deadline = time.monotonic() + 15
        while len(hooks.accepted) < 2:
            assert time.monotonic() < deadline, "the webhook events never arrived"
            dev.deliver_pending()
            time.sleep(0.2)
        assert set(hooks.accepted) == {issued["eventId"], revoked["eventId"]}
        assert set(hooks.accepted.values()) == {1}
    finally:
        hooks.close()
        pager.close()


def test_a_bad_dev_connector_parks_events_with_a_reason(aws, monkeypatch):
    pager = PagerDutyReceiver()
    try:
        monkeypatch.setenv("WRONG_KEY", "0" * 32)
        settings = _settings(f"""
[[connectors]]
name = "default-pager"
tenant = "default"
type = "pagerduty"
url = "{pager.url}"
secret_env = "WRONG_KEY"
events = ["CA Unavailable"]
""")
        dev = DevConnectors(settings.connectors, aws.sqs, aws.events, None, bus_name=aws.bus_name)
        EventPublisher(aws.events, aws.bus_name).publish(
            DetailType.CA_UNAVAILABLE, detail(DetailType.CA_UNAVAILABLE, tenant="default")
        )
        assert dev.deliver_pending() == 1
        (message,) = aws.sqs.receive_message(
            QueueUrl=dev.connectors[0].dlq_url, MessageAttributeNames=["All"]
        )["Messages"]
        reason = message["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
        assert "invalid event" in reason and "0" * 32 not in reason
        assert json.loads(message["Body"])["detail-type"] == "CA Unavailable"
    finally:
        pager.close()
