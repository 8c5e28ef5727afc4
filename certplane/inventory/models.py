"""pynamodb models of the inventory table and its indexes (DESIGN.md §3).

The primary key is tenant + serial, known before signing, so intent is recorded first. Each
access pattern has its own global index; the expiry and status indexes are write-sharded so
20M writes a day spread over partitions, and both are sparse where that keeps queries O(due).
"""

from __future__ import annotations

import os

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

INVENTORY_TABLE_ENV = "CERTPLANE_INVENTORY_TABLE"
INVENTORY_TABLE_DEFAULT = "certplane-inventory"


class ByCertificateId(GlobalSecondaryIndex["CertificateRecord"]):
    """certificate id (SHA-1 of the DER, what libCertifier sends) → record."""

    class Meta:
        index_name = "by-certificate-id"
        projection = KeysOnlyProjection()

    certificate_id = UnicodeAttribute(hash_key=True)
    tenant = UnicodeAttribute(range_key=True)


class ByIssuerSerial(GlobalSecondaryIndex["CertificateRecord"]):
    """issuing CA + serial → record (OCSP and CRLs, whose requests name an issuer, no tenant)."""

    class Meta:
        index_name = "by-issuer-serial"
        projection = KeysOnlyProjection()

    issuer_key = UnicodeAttribute(hash_key=True)


class ByTenant(GlobalSecondaryIndex["CertificateRecord"]):
    """tenant → records, newest first (paged listing with filters)."""

    class Meta:
        index_name = "by-tenant"
        projection = AllProjection()

    tenant = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class ByDevice(GlobalSecondaryIndex["CertificateRecord"]):
    """tenant + device id (or subject) → that device's certificates, newest first."""

    class Meta:
        index_name = "by-device"
        projection = AllProjection()

    device_key = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class ByExpiry(GlobalSecondaryIndex["CertificateRecord"]):
    """tenant + expiry day + write shard → live certificates expiring that day (sparse)."""

    class Meta:
        index_name = "by-expiry"
        projection = KeysOnlyProjection()

    expiry_bucket = UnicodeAttribute(hash_key=True)
    expiry_key = UnicodeAttribute(range_key=True)


class ByStatusAndCA(GlobalSecondaryIndex["CertificateRecord"]):
    """tenant + CA + status + write shard → serials (bulk operations, CRL generation)."""

    class Meta:
        index_name = "by-status-ca"
        projection = KeysOnlyProjection()

    status_key = UnicodeAttribute(hash_key=True)
    serial = UnicodeAttribute(range_key=True)


class CertificateRecord(Model):
    """One certificate, from the intent to sign until it ages out after expiry."""

    class Meta:
        table_name = os.environ.get(INVENTORY_TABLE_ENV, INVENTORY_TABLE_DEFAULT)
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    tenant = UnicodeAttribute()
    serial = UnicodeAttribute()
    status = UnicodeAttribute()
    profile = UnicodeAttribute()
    ca_id = UnicodeAttribute()
    route = ListAttribute(of=UnicodeAttribute, default=list)
    subject = UnicodeAttribute(default="")
    issuer = UnicodeAttribute(null=True)
    sans = ListAttribute(of=UnicodeAttribute, default=list)
    device_id = UnicodeAttribute()
    owner = UnicodeAttribute(null=True)
    requester = UnicodeAttribute()
    tags = MapAttribute[str, str](default=dict)
    key_algorithm = UnicodeAttribute()
    not_before = UTCDateTimeAttribute(null=True)
    not_after = UTCDateTimeAttribute(null=True)
    sha256_fingerprint = UnicodeAttribute(null=True)
    certificate_id = UnicodeAttribute(null=True)
    certificate_pem = UnicodeAttribute(null=True)
    chain_pem = UnicodeAttribute(null=True)
    allocated_serial = UnicodeAttribute(null=True)
    renewed_from = UnicodeAttribute(null=True)
    superseded_by = UnicodeAttribute(null=True)
    revocation_reason = UnicodeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    # The number of the CRL on which this revoked certificate appeared first after its expiry:
    # it is left off every later CRL (RFC 5280 §3.3; DESIGN.md §3).
    crl_final_number = NumberAttribute(null=True)
    failure_code = UnicodeAttribute(null=True)
    failure_message = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    created_key = UnicodeAttribute()
    device_key = UnicodeAttribute()
    issuer_key = UnicodeAttribute(null=True)
    expiry_bucket = UnicodeAttribute(null=True)
    expiry_key = UnicodeAttribute(null=True)
    status_key = UnicodeAttribute()
    expire_at = NumberAttribute(null=True)
    version = VersionAttribute()

    @property
    def tag_dict(self) -> dict[str, str]:
        """Tags as a plain dict (a loaded MapAttribute iterates like a model, not a dict)."""
        tags = self.tags
        return tags.as_dict() if isinstance(tags, MapAttribute) else dict(tags or {})

    by_certificate_id = ByCertificateId()
    by_issuer_serial = ByIssuerSerial()
    by_tenant = ByTenant()
    by_device = ByDevice()
    by_expiry = ByExpiry()
    by_status_ca = ByStatusAndCA()
