"""Slack incoming webhooks: one Block Kit message per event, with the required `text` fallback.

The webhook URL is itself the credential, so it is the connector's secret (a Secrets Manager
value in AWS); a plain `url` is accepted for local receivers. Slack answers 200 `ok`, errors
as plain-text codes, and 429 with Retry-After (about one message a second per webhook).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from certplane.events import DetailType
from connectors.base import CertplaneEvent
from connectors.http import HttpSender

MAX_HEADER = 150
MAX_FIELD = 2000
MAX_SECTION = 3000
MAX_FIELDS = 10

ICONS = {
    DetailType.ISSUED: ":white_check_mark:",
    DetailType.RENEWED: ":arrows_counterclockwise:",
    DetailType.REVOKED: ":no_entry:",
    DetailType.ISSUANCE_FAILED: ":x:",
    DetailType.EXPIRING: ":hourglass_flowing_sand:",
    DetailType.EXPIRED: ":warning:",
    DetailType.CA_UNAVAILABLE: ":rotating_light:",
    DetailType.CRL_PUBLISHED: ":page_facing_up:",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(event: CertplaneEvent) -> str:
    """One line saying what happened, to whom: the notification and fallback text."""
    detail = event.detail
    certificate = event.certificate or {}
    subject = certificate.get("subject") or detail.get("request", {}).get("deviceId") or ""
    line = f"{event.detail_type.value}"
    if subject:
        line += f": {subject}"
    if event.detail_type is DetailType.EXPIRING:
        line += f" ({detail['daysRemaining']} days left)"
    if event.detail_type is DetailType.REVOKED:
        line += f" ({detail['revocation']['reason']})"
    if event.detail_type is DetailType.ISSUANCE_FAILED:
        line += f" ({detail['failure']['code']})"
    if event.detail_type is DetailType.CA_UNAVAILABLE:
        line += f": {detail['ca']}"
    return f"[{event.tenant}] {line}"


def _fields(event: CertplaneEvent) -> list[tuple[str, str]]:
    certificate: Mapping[str, Any] = event.certificate or {}
    rows = [("Tenant", event.tenant)]
    for label, key in (
        ("Serial", "serial"),
        ("Profile", "profile"),
        ("CA", "ca"),
        ("Device", "deviceId"),
        ("Not after", "notAfter"),
        ("Certificate id", "certificateId"),
    ):
        if certificate.get(key):
            rows.append((label, str(certificate[key])))
    if "failure" in event.detail:
        rows.append(
            ("Failure", f"{event.detail['failure']['stage']}: {event.detail['failure']['message']}")
        )
    if "error" in event.detail:
        rows.append(("Error", str(event.detail["error"])))
    return rows[:MAX_FIELDS]


def message(event: CertplaneEvent) -> dict[str, Any]:
    """A Block Kit message inside Slack's limits (header 150, fields 10 x 2000)."""
    text = summary(event)
    header = f"{ICONS.get(event.detail_type, '')} {event.detail_type.value}".strip()
    return {
        "text": _clip(text, 4000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(header, MAX_HEADER)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", MAX_FIELD)}
                    for label, value in _fields(event)
                ],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"event {event.event_id} at {event.occurred_at}"}
                ],
            },
        ],
    }


class SlackConnector:
    """Posts each event to a Slack incoming webhook."""

    type_name = "slack"

    def __init__(self, url: str | None, secret: str | None, *, sender: HttpSender | None = None):
        target = secret or url
        if not target:
            raise ValueError("a slack connector needs its webhook URL (as secret, or url)")
        self._url = target
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        body = json.dumps(message(event), separators=(",", ":")).encode()
        self._sender.post(
            self._url, body=body, headers={"Content-Type": "application/json"}, target="slack"
        )
