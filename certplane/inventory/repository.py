"""Inventory operations: conditional state transitions and the DESIGN.md §3 access patterns.

Every read here is a GetItem, BatchGetItem or Query on a key or index (tests prove no Scan).
Every transition is conditional on the status it leaves, so two writers cannot both win.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from certplane.errors import Conflict, NotFound, RequestRejected
from certplane.inventory import keys
from certplane.inventory.models import CertificateRecord
from certplane.model import (
    CERTIFICATE_ID_PATTERN,
    CertificateStatus,
    certificate_id,
    format_serial,
    parse_serial,
)

RETENTION_AFTER_EXPIRY = datetime.timedelta(days=400)
FAILED_RETENTION = datetime.timedelta(days=90)
MAX_EXPIRY_WINDOW_DAYS = 400


@dataclass(frozen=True)
class Page:
    items: list[CertificateRecord]
    cursor: str | None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ceil_second(moment: datetime.datetime) -> datetime.datetime:
    floor = moment.replace(microsecond=0)
    return floor if floor == moment else floor + datetime.timedelta(seconds=1)


def _encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, expected: dict[str, str]) -> dict[str, Any]:
    """A cursor is only accepted for the query that produced it (same tenant, same partition)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise RequestRejected("invalid_cursor", "the page cursor is malformed") from None
    wanted = {"pk", "created_key", *expected}
    if not isinstance(key, dict) or set(key) != wanted:
        raise RequestRejected("invalid_cursor", "the page cursor is malformed")
    for name, value in key.items():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise RequestRejected("invalid_cursor", "the page cursor is malformed")
        if name in expected and value["S"] != expected[name]:
            raise RequestRejected("invalid_cursor", "the page cursor belongs to another query")
    return key


def _effective_status_condition(status: str) -> Any:
    """Match the status the API shows: an ISSUED record past notAfter reads EXPIRED before
    any sweep rewrites it, so ISSUED excludes it and EXPIRED includes it."""
    issued = CertificateRecord.status == CertificateStatus.ISSUED.value
    now = _now()
    if status == CertificateStatus.ISSUED.value:
        return issued & (CertificateRecord.not_after > now)
    if status == CertificateStatus.EXPIRED.value:
        return (CertificateRecord.status == status) | (
            issued & (CertificateRecord.not_after <= now)
        )
    return CertificateRecord.status == status


class Inventory:
    """The certificate inventory of every tenant, one DynamoDB table."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    # -- writes ---------------------------------------------------------------------------

    def create_pending(
        self,
        *,
        tenant: str,
        serial: int,
        profile: str,
        ca_id: str,
        route: list[str],
        device_id: str,
        requester: str,
        key_algorithm: str,
        subject: str = "",
        sans: list[str] | None = None,
        owner: str | None = None,
        tags: dict[str, str] | None = None,
        renewed_from: str | None = None,
    ) -> CertificateRecord:
        """Record the intent to sign before anything is signed (never overwrites)."""
        now = _now()
        record = CertificateRecord(
            pk=keys.record_key(tenant, serial),
            tenant=tenant,
            serial=format_serial(serial),
            status=CertificateStatus.PENDING.value,
            profile=profile,
            ca_id=ca_id,
            route=route,
            subject=subject,
            sans=sans or [],
            device_id=device_id,
            owner=owner,
            requester=requester,
            tags=tags or {},
            key_algorithm=key_algorithm,
            renewed_from=renewed_from,
            created_at=now,
            updated_at=now,
            created_key=keys.created_key(now, serial),
            device_key=keys.device_key(tenant, device_id),
            status_key=self._status_key(tenant, ca_id, CertificateStatus.PENDING, serial),
        )
        try:
            record.save(condition=CertificateRecord.pk.does_not_exist())
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict("serial_collision", "the serial number is already in use") from None
            raise
        return record

    def _status_key(self, tenant: str, ca_id: str, status: CertificateStatus, serial: int) -> str:
        return keys.status_key(tenant, ca_id, status, keys.write_shard(serial, self.shards))

    def _apply_issued(
        self,
        record: CertificateRecord,
        *,
        ca_id: str,
        issuer: str,
        subject: str,
        sans: list[str],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        certificate_id: str,
        sha256_fingerprint: str,
        certificate_pem: str,
        chain_pem: str,
    ) -> None:
        serial = int(record.serial, 16)
        record.status = CertificateStatus.ISSUED.value
        record.ca_id = ca_id
        record.issuer = issuer
        record.subject = subject
        record.sans = sans
        record.not_before = not_before
        record.not_after = not_after
        record.certificate_id = certificate_id
        record.sha256_fingerprint = sha256_fingerprint
        record.certificate_pem = certificate_pem
        record.chain_pem = chain_pem
        record.updated_at = _now()
        record.status_key = self._status_key(record.tenant, ca_id, CertificateStatus.ISSUED, serial)
        record.issuer_key = keys.issuer_key(ca_id, serial)
        shard = keys.write_shard(serial, self.shards)
        record.expiry_bucket = keys.expiry_bucket(record.tenant, keys.expiry_day(not_after), shard)
        record.expiry_key = keys.expiry_sort_key(not_after, serial)
        record.expire_at = int((not_after + RETENTION_AFTER_EXPIRY).timestamp())

    def record_issued(
        self,
        intent: CertificateRecord,
        *,
        issued_serial: int,
        previous: CertificateRecord | None = None,
        **issued: Any,
    ) -> CertificateRecord:
        """PENDING → ISSUED (and a renewed certificate → SUPERSEDED) in one transaction.

        When the CA chose its own serial (AWS Private CA), the record moves to that serial's
        key in the same transaction and the intent record is removed; the issued record keeps
        the allocated serial in `allocated_serial`.
        """
        record = intent
        if issued_serial != int(intent.serial, 16):
            record = self._rekeyed(intent, issued_serial)
        self._apply_issued(record, **issued)
        pending = CertificateRecord.status == CertificateStatus.PENDING.value
        if record is intent and previous is None:
            record.save(condition=pending)
            return record
        try:
            connection = CertificateRecord._get_connection().connection
            with TransactWrite(connection=connection) as transaction:
                if record is intent:
                    transaction.save(record, condition=pending)
                else:
                    transaction.save(record, condition=CertificateRecord.pk.does_not_exist())
                    transaction.delete(intent, condition=pending)
                if previous is not None:
                    previous_status = previous.status
                    self._leave_live_status(previous, CertificateStatus.SUPERSEDED)
                    previous.superseded_by = record.pk
                    transaction.save(
                        previous, condition=CertificateRecord.status == previous_status
                    )
        except TransactWriteError:
            if previous is not None:
                previous.refresh()
            raise Conflict(
                "invalid_state",
                f"certificate {record.serial} could not be recorded: its intent or the "
                "certificate it renews changed meanwhile",
            ) from None
        return record

    def _rekeyed(self, intent: CertificateRecord, serial: int) -> CertificateRecord:
        """A copy of the intent record under another serial (the one the CA assigned)."""
        values = {
            name: getattr(intent, name)
            for name in CertificateRecord.get_attributes()
            if name != "version"
        }
        values.update(
            pk=keys.record_key(intent.tenant, serial),
            serial=format_serial(serial),
            allocated_serial=intent.serial,
            created_key=keys.created_key(intent.created_at, serial),
            status_key=self._status_key(
                intent.tenant, intent.ca_id, CertificateStatus.PENDING, serial
            ),
        )
        return CertificateRecord(**values)

    def mark_failed(self, record: CertificateRecord, code: str, message: str) -> CertificateRecord:
        record.status = CertificateStatus.FAILED.value
        record.failure_code = code
        record.failure_message = message[:1000]
        record.updated_at = _now()
        record.status_key = self._status_key(
            record.tenant, record.ca_id, CertificateStatus.FAILED, int(record.serial, 16)
        )
        # A failure while recording may follow _apply_issued: a FAILED record is never due
        # and has no status to report.
        record.expiry_bucket = None
        record.expiry_key = None
        record.issuer_key = None
        record.expire_at = int((record.updated_at + FAILED_RETENTION).timestamp())
        record.save(condition=CertificateRecord.status == CertificateStatus.PENDING.value)
        return record

    def mark_expired(self, record: CertificateRecord) -> CertificateRecord:
        """ISSUED past notAfter → EXPIRED (the renewal sweep): it leaves the expiry index."""
        if record.status != CertificateStatus.ISSUED.value:
            raise Conflict("invalid_state", f"certificate {record.serial} is {record.status}")
        self._leave_live_status(record, CertificateStatus.EXPIRED)
        try:
            record.save(condition=CertificateRecord.status == CertificateStatus.ISSUED.value)
        except (PutError, UpdateError):
            record.refresh()
            raise Conflict(
                "invalid_state", f"certificate {record.serial} changed while it was expiring"
            ) from None
        return record

    def mark_revoked(
        self, record: CertificateRecord, reason: str, revoked_at: datetime.datetime
    ) -> CertificateRecord:
        previous_status = record.status
        self._leave_live_status(record, CertificateStatus.REVOKED)
        record.revocation_reason = reason
        record.revoked_at = revoked_at
        try:
            record.save(condition=CertificateRecord.status == previous_status)
        except (PutError, UpdateError):
            record.refresh()
            raise Conflict(
                "invalid_state", f"certificate {record.serial} changed while it was being revoked"
            ) from None
        return record

    def _leave_live_status(self, record: CertificateRecord, status: CertificateStatus) -> None:
        """Move out of ISSUED: the record leaves the sparse expiry index (nothing to renew)."""
        record.status = status.value
        record.updated_at = _now()
        record.status_key = self._status_key(
            record.tenant, record.ca_id, status, int(record.serial, 16)
        )
        record.expiry_bucket = None
        record.expiry_key = None

    # -- reads ----------------------------------------------------------------------------

    def get(self, tenant: str, serial: int) -> CertificateRecord | None:
        try:
            return CertificateRecord.get(keys.record_key(tenant, serial), consistent_read=True)
        except CertificateRecord.DoesNotExist:
            return None

    def get_by_certificate_id(self, tenant: str, certificate_id: str) -> CertificateRecord | None:
        for hit in CertificateRecord.by_certificate_id.query(
            certificate_id, CertificateRecord.tenant == tenant, limit=1
        ):
            return self.get(tenant, int(hit.pk.rsplit("#", 1)[1], 16))
        return None

    def locate(self, certificate_id: str) -> CertificateRecord | None:
        """The record of certificate id (SHA-1) in any tenant: devices name a certificate
        before any tenant is known (status URLs, tokens, TLS client certificates)."""
        for hit in CertificateRecord.by_certificate_id.query(certificate_id.lower(), limit=1):
            return self.get(hit.tenant, int(hit.pk.rsplit("#", 1)[1], 16))
        return None

    def record_of(self, certificate: x509.Certificate) -> CertificateRecord | None:
        """The record holding exactly this certificate (same DER: SHA-1 ids can collide)."""
        record = self.locate(certificate_id(certificate))
        if record is None or not record.certificate_pem:
            return None
        stored = x509.load_pem_x509_certificate(record.certificate_pem.encode())
        return record if stored == certificate else None

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """True for a certificate of ours that was revoked (False for unknown ones)."""
        record = self.record_of(certificate)
        return record is not None and record.status == CertificateStatus.REVOKED.value

    def get_by_issuer_serial(self, ca_id: str, serial: int) -> CertificateRecord | None:
        """The record a status request (OCSP, CRL) names by issuing CA and serial."""
        for hit in CertificateRecord.by_issuer_serial.query(
            keys.issuer_key(ca_id, serial), limit=1
        ):
            return CertificateRecord.get(hit.pk, consistent_read=True)
        return None

    def find(self, tenant: str, reference: str) -> CertificateRecord:
        """A record by certificate id (40 hex digits) or serial number (hex, colons allowed)."""
        reference = reference.strip().lower()
        record: CertificateRecord | None = None
        if CERTIFICATE_ID_PATTERN.match(reference):
            record = self.get_by_certificate_id(tenant, reference)
        if record is None:  # a 20-octet serial (AWS Private CA) is also 40 hex digits
            serial = parse_serial(reference)
            if serial is None:
                raise RequestRejected(
                    "invalid_reference",
                    "a certificate is named by its certificate id (40 hex digits) or serial",
                )
            record = self.get(tenant, serial)
        if record is None:
            raise NotFound("certificate_not_found", f"no certificate {reference} in this tenant")
        return record

    def list(
        self,
        tenant: str,
        *,
        status: str | None = None,
        profile: str | None = None,
        device_id: str | None = None,
        expiring_before: datetime.datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """A page of a tenant's records, newest first; filters narrow a Query, never a Scan."""
        condition = None
        for clause in (
            _effective_status_condition(status) if status else None,
            CertificateRecord.profile == profile if profile else None,
            CertificateRecord.not_after < expiring_before if expiring_before else None,
        ):
            if clause is not None:
                condition = clause if condition is None else condition & clause
        if device_id:
            index, hash_key, hash_name = (
                CertificateRecord.by_device,
                keys.device_key(tenant, device_id),
                "device_key",
            )
        else:
            index, hash_key, hash_name = CertificateRecord.by_tenant, tenant, "tenant"
        start = _decode_cursor(cursor, {hash_name: hash_key}) if cursor else None
        results = index.query(
            hash_key,
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
        )
        items = list(results)
        return Page(items=items, cursor=_encode_cursor(results.last_evaluated_key))

    def expiring(
        self, tenant: str, start: datetime.datetime, end: datetime.datetime
    ) -> Iterator[CertificateRecord]:
        """Live certificates whose notAfter is in [start, end): O(due), one Query per day-shard."""
        if end - start > datetime.timedelta(days=MAX_EXPIRY_WINDOW_DAYS):
            raise RequestRejected("invalid_window", "the expiry window is longer than 400 days")
        # notAfter has whole seconds: t >= start ⟺ t >= ⌈start⌉ and t < end ⟺ t < ⌈end⌉.
        low = keys.expiry_sort_key(_ceil_second(start), 0)
        high = keys.expiry_sort_key(_ceil_second(end), 0)
        day = start.astimezone(datetime.UTC).date()
        while day <= end.astimezone(datetime.UTC).date():
            for shard in range(self.shards):
                bucket = keys.expiry_bucket(tenant, day.isoformat(), shard)
                hits = CertificateRecord.by_expiry.query(
                    bucket, CertificateRecord.expiry_key.between(low, high)
                )
                yield from self._load([hit.pk for hit in hits if hit.expiry_key < high])
            day += datetime.timedelta(days=1)

    def serials_by_status(
        self,
        tenant: str,
        ca_id: str,
        status: CertificateStatus,
        write_shards: Iterable[int] | None = None,
    ) -> Iterator[str]:
        """Serials of one CA in one status (bulk revoke/reissue, CRL generation).

        `write_shards` narrows the Query to some of the index's write shards (serial % shards):
        a CRL shard needs only the write shards its serials can fall in.
        """
        for shard in range(self.shards) if write_shards is None else write_shards:
            for hit in CertificateRecord.by_status_ca.query(
                keys.status_key(tenant, ca_id, status, shard)
            ):
                yield hit.serial

    def _load(self, record_keys: list[str]) -> Iterator[CertificateRecord]:
        if record_keys:
            yield from CertificateRecord.batch_get(record_keys)
