"""How inventory records and profiles look on the wire (snake_case JSON)."""

from __future__ import annotations

from typing import Any

from certplane.config import Profile
from certplane.inventory import CertificateRecord
from certplane.lifecycle import effective_status
from certplane.model import iso_timestamp


def _serial_of(record_key: str | None) -> str | None:
    return record_key.rsplit("#", 1)[1] if record_key else None


def certificate_view(record: CertificateRecord, *, with_pem: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "certificate_id": record.certificate_id,
        "serial": record.serial,
        "status": effective_status(record),
        "profile": record.profile,
        "ca": record.ca_id,
        "issuer": record.issuer,
        "subject": record.subject,
        "sans": list(record.sans),
        "device_id": record.device_id,
        "owner": record.owner,
        "tags": record.tag_dict,
        "key_algorithm": record.key_algorithm,
        "not_before": iso_timestamp(record.not_before),
        "not_after": iso_timestamp(record.not_after),
        "sha256_fingerprint": record.sha256_fingerprint,
        "renewed_from": _serial_of(record.renewed_from),
        "superseded_by": _serial_of(record.superseded_by),
        "revocation": (
            {"reason": record.revocation_reason, "revoked_at": iso_timestamp(record.revoked_at)}
            if record.revocation_reason
            else None
        ),
        "failure": (
            {"code": record.failure_code, "message": record.failure_message}
            if record.failure_code
            else None
        ),
        "created_at": iso_timestamp(record.created_at),
        "requester": record.requester,
    }
    if with_pem:
        view["certificate_pem"] = record.certificate_pem
        view["chain_pem"] = record.chain_pem
    return view


def profile_view(profile: Profile) -> dict[str, Any]:
    return profile.model_dump(mode="json")
