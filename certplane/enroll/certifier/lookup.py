"""The status the xPKI client reads, and whether a certificate may still authenticate.

Certificates are found by id across tenants with `Inventory.locate` (one index Query).
"""

from __future__ import annotations

import datetime
from enum import StrEnum

from certplane.inventory import CertificateRecord
from certplane.model import CertificateStatus


class XpkiStatus(StrEnum):
    GOOD = "GOOD"
    REVOKED = "REVOKED"
    UNKNOWN = "UNKNOWN"


def xpki_status(record: CertificateRecord | None) -> XpkiStatus:
    """Revocation status, as OCSP reports it: expired or superseded but unrevoked is GOOD.

    The client checks notAfter itself; what it cannot know is revocation. Records that never
    held a certificate (PENDING, FAILED) and ids we never issued are UNKNOWN.
    """
    if record is None or not record.certificate_pem:
        return XpkiStatus.UNKNOWN
    if record.status == CertificateStatus.REVOKED.value:
        return XpkiStatus.REVOKED
    if record.status in {
        CertificateStatus.ISSUED.value,
        CertificateStatus.SUPERSEDED.value,
        CertificateStatus.EXPIRED.value,
    }:
        return XpkiStatus.GOOD
    return XpkiStatus.UNKNOWN


def is_live(record: CertificateRecord, now: datetime.datetime | None = None) -> bool:
    """Issued (or superseded by a renewal), not revoked, within its validity."""
    now = now or datetime.datetime.now(datetime.UTC)
    return (
        record.status in {CertificateStatus.ISSUED.value, CertificateStatus.SUPERSEDED.value}
        and record.not_after is not None
        and now < record.not_after
    )
