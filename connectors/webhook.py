"""Signed webhooks per Standard Webhooks v1 (standardwebhooks.com), for any HTTP receiver.

Each delivery is a POST of a JSON body `{"type", "timestamp", "data"}` with three headers:
`webhook-id` (the certplane event id: identical on every retry, so receivers deduplicate on
it), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256>` over `"{id}.{timestamp}.{body}"`, keyed with the base64-decoded
part of the `whsec_...` secret). Several space-separated signatures may be sent (`secret`
may list several, newest first, while a receiver rotates).

Verifying on the receiving side (Python, standard library only)::

    import base64, hashlib, hmac, time

    def verify(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> None:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:
            raise ValueError("timestamp outside tolerance")  # too old or too new
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{msg_id}.{timestamp}.".encode() + body  # the raw bytes, never re-serialized
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for candidate in headers["webhook-signature"].split(" "):
            version, _, signature = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(signature, expected):
                return  # then skip it if msg_id was already processed
        raise ValueError("no valid signature")

The `standardwebhooks` libraries (`Webhook(secret).verify(body, headers)`) do the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from connectors.base import CertplaneEvent, PermanentDelivery, event_type_slug
from connectors.http import HttpSender

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: base64 of 24-64 random bytes (the spec's range)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as error:
        raise ValueError("the part after whsec_ is not base64") from error
    if not 24 <= len(key) <= 64:
        raise ValueError("a Standard Webhooks secret holds 24 to 64 bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def payload(event: CertplaneEvent) -> bytes:
    """The body: the spec's recommended envelope around the unchanged certplane detail."""
    document = {
        "type": event_type_slug(event.detail_type),
        "timestamp": event.occurred_at,
        "data": {"detailType": event.detail_type.value, **event.detail},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class WebhookConnector:
    """POSTs each event, signed, to one URL."""

    type_name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        sender: HttpSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a webhook connector needs a whsec_ secret")
        # Several secrets (space-separated) sign with each: receivers can rotate without loss.
        self._keys = [decode_secret(part) for part in secret.split()]
        self._url = url
        self._sender = sender or HttpSender()
        self._clock = clock

    def deliver(self, event: CertplaneEvent) -> None:
        if "." in event.event_id:
            raise PermanentDelivery("webhook-id may not contain '.'")
        body = payload(event)
        timestamp = int(self._clock())
        signatures = " ".join(sign(key, event.event_id, timestamp, body) for key in self._keys)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }
        self._sender.post(self._url, body=body, headers=headers, target="webhook")
