"""The event contract (DESIGN.md §4): detail-types, detail shape, schemas and publishing.

Connectors depend on this module alone. A detail never carries a private key: certificate
summaries are built from inventory fields, which hold none.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from certplane.model import iso_timestamp

if TYPE_CHECKING:
    from referencing import Registry

logger = logging.getLogger(__name__)

SOURCE = "certplane"
SCHEMA_VERSION = "1.0"
EVENT_BUS_ENV = "CERTPLANE_EVENT_BUS"
EVENT_BUS_DEFAULT = "certplane"


class DetailType(StrEnum):
    ISSUED = "Certificate Issued"
    RENEWED = "Certificate Renewed"
    REVOKED = "Certificate Revoked"
    ISSUANCE_FAILED = "Certificate Issuance Failed"
    EXPIRING = "Certificate Expiring"
    EXPIRED = "Certificate Expired"
    CA_UNAVAILABLE = "CA Unavailable"
    CRL_PUBLISHED = "CRL Published"

    @property
    def schema_name(self) -> str:
        return self.value.lower().replace(" ", "-") + ".json"


class CertificateView(Protocol):
    """The inventory fields a certificate summary is made of."""

    tenant: str
    serial: str
    status: str
    certificate_id: str | None
    issuer: str | None
    subject: str
    sans: list[str]
    profile: str
    ca_id: str
    key_algorithm: str
    not_before: datetime.datetime | None
    not_after: datetime.datetime | None
    sha256_fingerprint: str | None
    device_id: str
    owner: str | None
    tag_dict: dict[str, str]


def certificate_summary(record: CertificateView) -> dict[str, Any]:
    return {
        "certificateId": record.certificate_id,
        "serial": record.serial,
        "status": record.status,
        "issuer": record.issuer,
        "subject": record.subject,
        "sans": list(record.sans),
        "profile": record.profile,
        "ca": record.ca_id,
        "keyAlgorithm": record.key_algorithm,
        "notBefore": iso_timestamp(record.not_before),
        "notAfter": iso_timestamp(record.not_after),
        "fingerprints": {"sha256": record.sha256_fingerprint, "sha1": record.certificate_id},
        "deviceId": record.device_id,
        "owner": record.owner,
        "tags": record.tag_dict,
    }


def build_detail(
    tenant: str, actor: str, *, occurred_at: datetime.datetime | None = None, **body: Any
) -> dict[str, Any]:
    """The common envelope every detail shares, plus the type-specific fields in `body`."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "eventId": str(uuid.uuid4()),
        "occurredAt": iso_timestamp(occurred_at or datetime.datetime.now(datetime.UTC)),
        "tenant": tenant,
        "actor": actor,
        **body,
    }


# jsonschema and referencing are imported where schemas are checked (connectors, tests):
# the enrollment and API handlers publish events but never validate them, and these two
# libraries would otherwise be a sixth of their cold-start imports.
@cache
def _registry() -> Registry:
    from referencing import Registry, Resource

    folder = resources.files("certplane").joinpath("schemas/events")
    registry: Registry = Registry()
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text())
            registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    return registry


def schema_for(detail_type: DetailType | str) -> dict[str, Any]:
    name = DetailType(detail_type).schema_name
    text = resources.files("certplane").joinpath(f"schemas/events/{name}").read_text()
    return json.loads(text)


def validate_detail(detail_type: DetailType | str, detail: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `detail` breaks its detail-type's schema."""
    from jsonschema import Draft202012Validator

    Draft202012Validator(
        schema_for(detail_type),
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    ).validate(detail)


class EventPublisher:
    """Puts certplane events on the EventBridge bus, one entry per lifecycle fact."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name
        self._connect: Callable[[], Any] | None = None

    @classmethod
    def connecting_on_first_event(cls, connect: Callable[[], Any], bus_name: str) -> EventPublisher:
        """A publisher whose EventBridge client `connect` makes when the first event is put.

        Making an AWS client loads its service model (tens of milliseconds of a cold start);
        a Lambda instance that only answers reads (EST /cacerts, status) never needs it.
        """
        publisher = cls(None, bus_name)
        publisher._connect = connect
        return publisher

    def publish(self, detail_type: DetailType, detail: Mapping[str, Any]) -> None:
        """Put one event; a bus outage is logged, never undoes the certificate it reports."""
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type.value,
            "Detail": json.dumps(detail, separators=(",", ":")),
            "EventBusName": self._bus_name,
            "Resources": [],
        }
        try:
            if self._client is None and self._connect is not None:
                self._client = self._connect()
            response = self._client.put_events(Entries=[entry])
        except (BotoCoreError, ClientError):
            logger.exception("could not put %s event %s", detail_type.value, detail["eventId"])
            return
        if response.get("FailedEntryCount"):
            logger.error(
                "EventBridge refused %s event %s: %s",
                detail_type.value,
                detail["eventId"],
                response.get("Entries"),
            )
