"""Microsoft Teams: one Adaptive Card per event, posted to a Workflows (Power Automate) webhook.

Office 365 connectors (`*.webhook.office.com`) are retired; the "When a Teams webhook request is
received" Workflows trigger replaces them and accepts Adaptive Cards only (no MessageCard).
Its URL is opaque and signed (`…/workflows/<id>/triggers/manual/paths/invoke?…&sig=…`), so the
whole URL is the connector's secret and never appears in reasons or logs.
Body: `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
"contentUrl":null,"content":<AdaptiveCard 1.4>}]}`. The flow answers 202 and runs later: a card
the flow cannot render fails in its run history while we still see 2xx, which is why the card is
kept to a plain, well-known subset (TextBlock, FactSet) and under ~28 KB.
"""

from __future__ import annotations

import json
from typing import Any

from certplane.events import DetailType
from connectors.base import CertplaneEvent
from connectors.http import HttpSender
from connectors.slack import _fields, summary

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
MAX_BODY_BYTES = 28_000
MAX_TEXT = 2000

COLORS = {  # TextBlock color of the title: Good / Warning / Attention / Default
    DetailType.ISSUED: "Good",
    DetailType.RENEWED: "Good",
    DetailType.REVOKED: "Attention",
    DetailType.ISSUANCE_FAILED: "Attention",
    DetailType.EXPIRING: "Warning",
    DetailType.EXPIRED: "Attention",
    DetailType.CA_UNAVAILABLE: "Attention",
    DetailType.CRL_PUBLISHED: "Default",
}


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card(event: CertplaneEvent) -> dict[str, Any]:
    """An Adaptive Card 1.4: title, one-line summary, facts, and the event id for dedup."""
    return {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": event.detail_type.value,
                "weight": "Bolder",
                "size": "Medium",
                "color": COLORS.get(event.detail_type, "Default"),
                "wrap": True,
            },
            {"type": "TextBlock", "text": _clip(summary(event)), "wrap": True},
            {
                "type": "FactSet",
                "facts": [
                    {"title": label, "value": _clip(value, 500)} for label, value in _fields(event)
                ],
            },
            {
                "type": "TextBlock",
                "text": f"event {event.event_id} at {event.occurred_at}",
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }


def message(event: CertplaneEvent) -> dict[str, Any]:
    """The Workflows webhook body: a `message` with the card as its single attachment."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card(event)}
        ],
    }


class TeamsConnector:
    """Posts each event as an Adaptive Card to a Teams Workflows webhook."""

    type_name = "teams"

    def __init__(self, url: str | None, secret: str | None, *, sender: HttpSender | None = None):
        target = secret or url
        if not target:
            raise ValueError("a teams connector needs its workflow webhook URL (as secret, or url)")
        self._url = target
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        document = message(event)
        body = json.dumps(document, separators=(",", ":")).encode()
        if len(body) > MAX_BODY_BYTES:  # keep the title, summary and event id; drop the facts
            document["attachments"][0]["content"]["body"][2]["facts"] = []
            body = json.dumps(document, separators=(",", ":")).encode()
        self._sender.post(
            self._url, body=body, headers={"Content-Type": "application/json"}, target="teams"
        )
