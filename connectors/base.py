"""What every connector is: something that delivers one certplane event, or says why not.

A connector never decides about retries itself. It raises `RetryableDelivery` when the target
may accept the same event later (throttled, down, timed out) and `PermanentDelivery` when it
never will (the event or the configuration is wrong); the SQS batch layer (connectors.batch)
turns the first into "leave the message on the queue" and the second into "park it in the
DLQ with its reason". That keeps every connector a small, synchronous, testable function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from jsonschema import ValidationError

from certplane.events import SOURCE, DetailType, validate_detail


class DeliveryError(Exception):
    """Base of the two outcomes a connector may report instead of success."""


class RetryableDelivery(DeliveryError):
    """The target may take this event later; `retry_after` (seconds) is its hint, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PermanentDelivery(DeliveryError):
    """The target will never take this event as it is; retrying only delays the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CertplaneEvent:
    """One certplane event as EventBridge delivers it, checked against its §4 schema.

    `event_id` is the detail's own `eventId` (stable across retries, redrives and archive
    replays), which is why receivers deduplicate on it rather than on EventBridge's `id`.
    """

    detail_type: DetailType
    detail: Mapping[str, Any]
    time: str
    envelope_id: str

    @property
    def event_id(self) -> str:
        return str(self.detail["eventId"])

    @property
    def tenant(self) -> str:
        return str(self.detail["tenant"])

    @property
    def occurred_at(self) -> str:
        return str(self.detail["occurredAt"])

    @property
    def certificate(self) -> Mapping[str, Any] | None:
        return self.detail.get("certificate")

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any] | str) -> CertplaneEvent:
        """Parse an EventBridge envelope; anything that is not a valid certplane event is
        permanent (it will not become valid by waiting)."""
        try:
            data = json.loads(envelope) if isinstance(envelope, str) else envelope
            if data.get("source") != SOURCE:
                raise PermanentDelivery(f"not a certplane event (source {data.get('source')!r})")
            detail_type = DetailType(data["detail-type"])
            detail = data["detail"]
            validate_detail(detail_type, detail)
        except PermanentDelivery:
            raise
        except ValidationError as error:
            raise PermanentDelivery(f"detail breaks its schema: {error.message}") from error
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise PermanentDelivery(f"not an EventBridge certplane event: {error!r}") from error
        return cls(detail_type, detail, str(data.get("time", "")), str(data.get("id", "")))


@runtime_checkable
class Connector(Protocol):
    """Delivers one event to one target; returns on success (including "nothing to do")."""

    type_name: str

    def deliver(self, event: CertplaneEvent) -> None: ...


@runtime_checkable
class BatchConnector(Connector, Protocol):
    """A target taking many events in one request (Splunk HEC): all delivered, or none."""

    def deliver_many(self, events: Sequence[CertplaneEvent]) -> None: ...


def event_type_slug(detail_type: DetailType) -> str:
    """ "Certificate Issuance Failed" -> "certificate.issuance_failed" (machine-friendly type)."""
    head, *rest = detail_type.value.lower().split(" ")
    return f"{head}.{'_'.join(rest)}"
