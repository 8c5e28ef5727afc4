"""PagerDuty Events API v2: open an alert for conditions someone must act on, close it on recovery.

Triggers (severity critical unless said): a revocation for keyCompromise, a CA unavailable,
and an issuance failure (error). Each condition has one stable `dedup_key`, so a storm of
failures for one tenant and profile collapses into one alert and a retried delivery never
opens a second. Recovery: a Certificate Renewed resolves the key-compromise and
renewal-failure alerts of the certificate it replaced. Other events are accepted and ignored.

The routing key (integration key) is the connector's secret; it travels in the body, as the
API has no auth header. 202 = queued; 400 = invalid (permanent); 429 and 5xx = retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery
from connectors.http import HttpSender

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


def _certificate_key(certificate: Mapping[str, Any]) -> str:
    """Certificate identity: its id (SHA-1 of DER) or, before it has one, issuer+serial."""
    return str(
        certificate.get("certificateId") or f"{certificate.get('ca')}/{certificate['serial']}"
    )


def dedup_key(tenant: str, condition: str, subject: str) -> str:
    return f"certplane/{tenant}/{condition}/{subject}"[:MAX_DEDUP_KEY]


def actions(event: CertplaneEvent, source: str) -> list[dict[str, Any]]:
    """The Events API v2 bodies (without routing_key) this event calls for, maybe none."""
    detail = event.detail
    tenant = event.tenant
    if event.detail_type is DetailType.REVOKED:
        if detail["revocation"]["reason"] != "keyCompromise":
            return []
        certificate = detail["certificate"]
        return [
            _trigger(
                dedup_key(tenant, "key-compromise", _certificate_key(certificate)),
                f"[{tenant}] key compromise: certificate {certificate['subject']} "
                f"(serial {certificate['serial']}) revoked",
                "critical",
                "revocation",
                event,
                source,
                component=certificate.get("deviceId"),
            )
        ]
    if event.detail_type is DetailType.CA_UNAVAILABLE:
        return [
            _trigger(
                dedup_key(tenant, "ca-unavailable", detail["ca"]),
                f"[{tenant}] CA {detail['ca']} unavailable: {detail['error']}",
                "critical",
                "ca-availability",
                event,
                source,
                component=detail["ca"],
            )
        ]
    if event.detail_type is DetailType.ISSUANCE_FAILED:
        request = detail["request"]
        failure = detail["failure"]
        if request.get("renewing"):
            key = dedup_key(tenant, "renewal-failed", str(request["renewing"]))
        else:
            key = dedup_key(tenant, "issuance-failed", str(request["profile"]))
        return [
            _trigger(
                key,
                f"[{tenant}] certificate {request['operation']} failed for profile "
                f"{request['profile']}: {failure['code']} at {failure['stage']}",
                "error",
                "issuance",
                event,
                source,
                component=request.get("deviceId"),
            )
        ]
    if event.detail_type is DetailType.RENEWED:
        previous = _certificate_key(detail["previousCertificate"])
        return [
            {"event_action": "resolve", "dedup_key": dedup_key(tenant, condition, previous)}
            for condition in ("key-compromise", "renewal-failed")
        ]
    return []


def _trigger(
    key: str,
    summary: str,
    severity: str,
    group: str,
    event: CertplaneEvent,
    source: str,
    component: str | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "summary": summary[:MAX_SUMMARY],
        "source": source,
        "severity": severity,
        "timestamp": event.occurred_at,
        "group": group,
        "class": event.detail_type.value,
        "custom_details": {"eventId": event.event_id, **event.detail},
    }
    if component:
        payload["component"] = component
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": payload,
        "client": "certplane",
    }


class PagerDutyConnector:
    """Sends the Events API v2 actions an event calls for."""

    type_name = "pagerduty"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        source: str = "certplane",
        sender: HttpSender | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a pagerduty connector needs the integration (routing) key")
        self._url = url or DEFAULT_URL
        self._routing_key = secret
        self._source = source
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        # Several actions (resolves) are each idempotent, so a retry after a partial success
        # repeating the first is harmless.
        for action in actions(event, self._source):
            body = json.dumps({"routing_key": self._routing_key, **action}).encode()
            response = self._sender.post(
                self._url,
                body=body,
                headers={"Content-Type": "application/json"},
                target="pagerduty",
            )
            if response.status_code != 202:
                raise PermanentDelivery(f"pagerduty: expected 202, got {response.status_code}")
