"""Splunk HTTP Event Collector: events batched into one request, `Authorization: Splunk <token>`.

HEC takes several JSON objects written back to back (not a JSON array) on
`/services/collector/event`; `time` is epoch seconds (never an ISO string); `fields` holds
flat indexed fields (strings only), where the event id goes so searches can deduplicate:
HEC has no idempotency, and a retried batch may index an event twice.
One bad object fails the whole request (400 code 6), so a batch refused permanently is
retried event by event to isolate the bad one (connectors.batch does that).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from connectors.base import CertplaneEvent
from connectors.http import HttpSender

EVENT_PATH = "/services/collector/event"


def hec_event(
    event: CertplaneEvent,
    *,
    source: str,
    sourcetype: str,
    index: str | None,
    host: str | None,
) -> dict[str, Any]:
    occurred = datetime.datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00"))
    document: dict[str, Any] = {
        "time": round(occurred.timestamp(), 3),
        "source": source,
        "sourcetype": sourcetype,
        "event": {"detailType": event.detail_type.value, **event.detail},
        "fields": {
            "event_id": event.event_id,
            "tenant": event.tenant,
            "detail_type": event.detail_type.value,
        },
    }
    if index:
        document["index"] = index
    if host:
        document["host"] = host
    return document


class SplunkHecConnector:
    """Sends events to one HEC endpoint; `url` is the HEC base (https://host:8088)."""

    type_name = "splunk"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        index: str | None = None,
        source: str = "certplane",
        sourcetype: str = "certplane:event",
        host: str | None = None,
        sender: HttpSender | None = None,
    ) -> None:
        if not url or not secret:
            raise ValueError("a splunk connector needs the HEC url and token (secret)")
        self._url = url if "/services/collector" in url else url.rstrip("/") + EVENT_PATH
        self._token = secret
        self._shape = {"source": source, "sourcetype": sourcetype, "index": index, "host": host}
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        self.deliver_many([event])

    def deliver_many(self, events: Sequence[CertplaneEvent]) -> None:
        """One request for the whole batch: newline-separated objects."""
        body = "\n".join(
            json.dumps(hec_event(event, **self._shape), separators=(",", ":")) for event in events
        ).encode()
        self._sender.post(
            self._url,
            body=body,
            headers={"Authorization": f"Splunk {self._token}", "Content-Type": "application/json"},
            target="splunk",
        )
