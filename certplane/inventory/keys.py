"""How index keys are spelled; every key starts with the tenant."""

from __future__ import annotations

import datetime

from certplane.model import CertificateStatus, format_serial


def record_key(tenant: str, serial: int) -> str:
    return f"{tenant}#{format_serial(serial)}"


def issuer_key(ca_id: str, serial: int) -> str:
    """The one key not led by the tenant: status requests name only the issuer and serial."""
    return f"{ca_id}#{format_serial(serial)}"


def write_shard(serial: int, shards: int) -> int:
    """Serials are random, so the low bits spread writes evenly over the shards."""
    return serial % shards


def created_key(created_at: datetime.datetime, serial: int) -> str:
    return f"{created_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{format_serial(serial)}"


def device_key(tenant: str, device_id: str) -> str:
    return f"{tenant}#{device_id}"


def expiry_day(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d")


def expiry_bucket(tenant: str, day: str, shard: int) -> str:
    return f"{tenant}#{day}#{shard:03d}"


def expiry_sort_key(not_after: datetime.datetime, serial: int) -> str:
    moment = not_after.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{moment}#{format_serial(serial)}"


def status_key(tenant: str, ca_id: str, status: CertificateStatus, shard: int) -> str:
    return f"{tenant}#{ca_id}#{status.value}#{shard:03d}"
