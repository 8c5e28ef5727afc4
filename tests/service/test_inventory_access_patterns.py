"""DESIGN.md §3: every access pattern is a GetItem, BatchGetItem or Query — never a Scan.

Records are written through the Inventory itself (PENDING → ISSUED/REVOKED/...), so the index
keys under test are the ones production writes.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections import Counter

import pytest

from certplane.errors import Conflict, NotFound, RequestRejected
from certplane.inventory import CertificateRecord, Inventory
from certplane.inventory import keys as inventory_keys
from certplane.model import CertificateStatus, format_serial, new_serial_number

READ_OPERATIONS = {"GetItem", "BatchGetItem", "Query"}
SHARDS = 8
BASE = datetime.datetime(2027, 3, 10, tzinfo=datetime.UTC)


@pytest.fixture
def inventory(aws) -> Inventory:
    return Inventory(SHARDS)


def serial_in_shard(shard: int) -> int:
    serial = new_serial_number()
    return serial - serial % SHARDS + shard


def put_pending(
    inventory: Inventory,
    tenant: str = "acme",
    *,
    serial: int | None = None,
    profile: str = "device",
    device_id: str = "dev-1",
    ca_id: str = "local-dev",
) -> CertificateRecord:
    return inventory.create_pending(
        tenant=tenant,
        serial=serial or new_serial_number(),
        profile=profile,
        ca_id=ca_id,
        route=[ca_id],
        device_id=device_id,
        requester="tests",
        key_algorithm="P-256",
        subject=f"CN={device_id}",
        sans=[],
    )


def put_issued(
    inventory: Inventory,
    tenant: str = "acme",
    *,
    not_after: datetime.datetime | None = None,
    serial: int | None = None,
    profile: str = "device",
    device_id: str = "dev-1",
    ca_id: str = "local-dev",
) -> CertificateRecord:
    record = put_pending(
        inventory, tenant, serial=serial, profile=profile, device_id=device_id, ca_id=ca_id
    )
    not_after = not_after or BASE + datetime.timedelta(days=100)
    return inventory.record_issued(
        record,
        issued_serial=serial_of(record),
        ca_id=ca_id,
        issuer="CN=certplane local-dev Issuing CA,O=certplane",
        subject=f"CN={device_id}",
        sans=[],
        not_before=not_after - datetime.timedelta(days=90),
        not_after=not_after,
        certificate_id=hashlib.sha1(record.pk.encode()).hexdigest(),
        sha256_fingerprint=hashlib.sha256(record.pk.encode()).hexdigest(),
        certificate_pem="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        chain_pem="",
    )


def serial_of(record: CertificateRecord) -> int:
    return int(record.serial, 16)


def assert_served_without_scan(dynamo_calls, *indexes: str) -> None:
    operations = set(dynamo_calls.operations)
    assert "Scan" not in operations
    assert operations, "no DynamoDB call was recorded"
    assert operations <= READ_OPERATIONS, operations
    used = dynamo_calls.index_names("Query")
    assert used == set(indexes), f"queried {used}, expected {set(indexes)}"


# -- by certificate id and by (tenant, serial) --------------------------------------------


def test_by_certificate_id_is_an_index_query_and_a_get(inventory, dynamo_calls):
    wanted = put_issued(inventory)
    put_issued(inventory)
    dynamo_calls.clear()

    found = inventory.find("acme", wanted.certificate_id)
    assert found.pk == wanted.pk and found.certificate_pem == wanted.certificate_pem
    assert_served_without_scan(dynamo_calls, "by-certificate-id")
    assert dynamo_calls.operations == ["Query", "GetItem"]
    query = dynamo_calls.calls[0][1]
    assert query["IndexName"] == "by-certificate-id"
    assert query["Limit"] == 1
    assert dynamo_calls.calls[1][1].get("ConsistentRead") is True


def test_by_tenant_and_serial_is_a_get(inventory, dynamo_calls):
    wanted = put_issued(inventory)
    dynamo_calls.clear()
    serial = serial_of(wanted)
    colons = ":".join(format_serial(serial)[i : i + 2] for i in range(0, 32, 2))
    for reference in (wanted.serial, wanted.serial.upper(), colons, format(serial, "x")):
        assert inventory.find("acme", reference).pk == wanted.pk
    assert inventory.get("acme", serial).pk == wanted.pk
    assert set(dynamo_calls.operations) == {"GetItem"}


def test_by_issuer_and_serial_is_an_index_query_and_a_get(inventory, dynamo_calls):
    wanted = put_issued(inventory, ca_id="ca-a")
    same_serial_other_ca = put_issued(inventory, "other", serial=serial_of(wanted), ca_id="ca-b")
    pending = put_pending(inventory, ca_id="ca-a")
    dynamo_calls.clear()

    assert inventory.get_by_issuer_serial("ca-a", serial_of(wanted)).pk == wanted.pk
    assert inventory.get_by_issuer_serial("ca-b", serial_of(wanted)).pk == same_serial_other_ca.pk
    assert_served_without_scan(dynamo_calls, "by-issuer-serial")
    # Only issued certificates have a status to report; intent alone is not in the index.
    assert inventory.get_by_issuer_serial("ca-a", serial_of(pending)) is None
    assert inventory.get_by_issuer_serial("ca-c", serial_of(wanted)) is None


def test_locate_by_certificate_id_across_tenants_is_an_index_query(inventory, dynamo_calls):
    wanted = put_issued(inventory, "tenant-b")
    put_issued(inventory, "tenant-a")
    dynamo_calls.clear()
    found = inventory.locate(wanted.certificate_id.upper())
    assert found is not None and (found.tenant, found.pk) == ("tenant-b", wanted.pk)
    assert_served_without_scan(dynamo_calls, "by-certificate-id")
    assert inventory.locate("0" * 40) is None


def test_unknown_references(inventory, dynamo_calls):
    put_issued(inventory)
    with pytest.raises(NotFound):
        inventory.find("acme", "0" * 40)
    with pytest.raises(NotFound):
        inventory.find("acme", format_serial(new_serial_number()))
    with pytest.raises(RequestRejected) as caught:
        inventory.find("acme", "not-a-serial")
    assert caught.value.code == "invalid_reference"
    assert "Scan" not in dynamo_calls.operations


# -- by device ---------------------------------------------------------------------------


def test_by_device_is_an_index_query(inventory, dynamo_calls):
    mine = [put_issued(inventory, device_id="gw-7") for _ in range(3)]
    put_issued(inventory, device_id="gw-8")
    put_issued(inventory, "other", device_id="gw-7")
    dynamo_calls.clear()

    page = inventory.list("acme", device_id="gw-7")
    assert [r.pk for r in page.items] == [r.pk for r in reversed(mine)], "newest first"
    assert page.cursor is None
    assert_served_without_scan(dynamo_calls, "by-device")


# -- by tenant: paged listing with filters -----------------------------------------------


def collect(inventory: Inventory, tenant: str, **filters) -> tuple[list[str], int]:
    """Every page of a listing; returns the record keys in order and the number of pages."""
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = inventory.list(tenant, cursor=cursor, **filters)
        pages += 1
        seen.extend(record.pk for record in page.items)
        cursor = page.cursor
        if cursor is None:
            return seen, pages
        assert pages < 50, "the listing does not terminate"


def test_tenant_listing_pages_newest_first(inventory, dynamo_calls):
    records = [put_issued(inventory, device_id=f"dev-{i}") for i in range(7)]
    put_issued(inventory, "other")
    dynamo_calls.clear()

    first = inventory.list("acme", limit=3)
    assert len(first.items) == 3 and first.cursor
    keys, pages = collect(inventory, "acme", limit=3)
    assert keys == [r.pk for r in reversed(records)]
    assert pages >= 3
    assert_served_without_scan(dynamo_calls, "by-tenant")
    assert all(kwargs["Limit"] == 3 for _, kwargs in dynamo_calls.calls)


def test_tenant_listing_filters(inventory, dynamo_calls):
    soon = put_issued(inventory, not_after=BASE + datetime.timedelta(days=5), device_id="d1")
    late = put_issued(inventory, not_after=BASE + datetime.timedelta(days=300), device_id="d1")
    server = put_issued(inventory, profile="server", device_id="d2")
    revoked = put_issued(inventory, device_id="d2")
    inventory.mark_revoked(revoked, "keyCompromise", BASE)
    pending = put_pending(inventory, device_id="d3")
    put_issued(inventory, "other", profile="server", device_id="d1")
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    lapsed = put_issued(inventory, not_after=yesterday, device_id="d4")
    dynamo_calls.clear()

    def listed(**filters) -> set[str]:
        keys, _ = collect(inventory, "acme", limit=2, **filters)
        assert len(keys) == len(set(keys))
        return set(keys)

    assert listed(status="REVOKED") == {revoked.pk}
    assert listed(status="PENDING") == {pending.pk}
    # The status the API shows: ISSUED past notAfter reads EXPIRED before any sweep.
    assert listed(status="ISSUED") == {soon.pk, late.pk, server.pk}
    assert listed(status="EXPIRED") == {lapsed.pk}
    assert listed(profile="server") == {server.pk}
    assert listed(expiring_before=BASE + datetime.timedelta(days=30)) == {soon.pk, lapsed.pk}
    assert listed(status="ISSUED", profile="device") == {soon.pk, late.pk}
    assert lapsed.status == "ISSUED"
    assert_served_without_scan(dynamo_calls, "by-tenant")

    dynamo_calls.clear()
    assert listed(device_id="d1") == {soon.pk, late.pk}
    assert listed(device_id="d2", status="ISSUED") == {server.pk}
    assert listed(device_id="d1", expiring_before=BASE + datetime.timedelta(days=30)) == {soon.pk}
    assert_served_without_scan(dynamo_calls, "by-device")


# -- tenant isolation and cursors --------------------------------------------------------


def test_tenants_cannot_see_each_other(inventory, dynamo_calls):
    theirs = [put_issued(inventory, "tenant-a", device_id="shared") for _ in range(3)]
    dynamo_calls.clear()
    assert collect(inventory, "tenant-b")[0] == []
    assert inventory.list("tenant-b", device_id="shared").items == []
    for record in theirs:
        assert inventory.get("tenant-b", serial_of(record)) is None
        with pytest.raises(NotFound):
            inventory.find("tenant-b", record.certificate_id)
        with pytest.raises(NotFound):
            inventory.find("tenant-b", record.serial)
    issued = CertificateStatus.ISSUED
    assert list(inventory.serials_by_status("tenant-b", "local-dev", issued)) == []
    assert len(list(inventory.serials_by_status("tenant-a", "local-dev", issued))) == 3
    start = BASE + datetime.timedelta(days=99)  # put_issued's notAfter is BASE + 100 days
    end = BASE + datetime.timedelta(days=101)
    assert list(inventory.expiring("tenant-b", start, end)) == []
    assert len(list(inventory.expiring("tenant-a", start, end))) == 3
    assert "Scan" not in dynamo_calls.operations


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_only_serves_its_own_query(inventory):
    for _ in range(3):
        put_issued(inventory, "tenant-a", device_id="shared")
        put_issued(inventory, "tenant-b", device_id="shared")
    cursor = inventory.list("tenant-a", limit=1).cursor
    device_cursor = inventory.list("tenant-a", device_id="shared", limit=1).cursor
    assert cursor and device_cursor
    assert len(inventory.list("tenant-a", limit=5, cursor=cursor).items) == 2

    for tenant, kwargs in (
        ("tenant-b", {"cursor": cursor}),
        ("tenant-b", {"cursor": device_cursor, "device_id": "shared"}),
        ("tenant-a", {"cursor": device_cursor}),  # a device cursor is not a tenant cursor
        ("tenant-a", {"cursor": cursor, "device_id": "shared"}),
        ("tenant-a", {"cursor": device_cursor, "device_id": "other"}),
    ):
        with pytest.raises(RequestRejected) as caught:
            inventory.list(tenant, **kwargs)
        assert caught.value.code == "invalid_cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "not-a-cursor",
        "e30",  # {}
        _cursor([1, 2, 3]),
        _cursor("acme"),
        _cursor({"pk": {"S": "acme#00"}}),
        _cursor({"pk": {"S": "x"}, "tenant": {"S": "acme"}, "created_key": {"N": "1"}}),
        _cursor({"pk": {"S": "x"}, "tenant": {"S": "acme"}, "created_key": "plain"}),
        _cursor({"pk": {"S": "x"}, "tenant": {"S": "acme"}, "created_key": {"S": "k"}, "more": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe\x00garbage").decode(),
    ],
)
def test_malformed_cursors_are_refused(inventory, cursor):
    with pytest.raises(RequestRejected) as caught:
        inventory.list("acme", cursor=cursor)
    assert caught.value.code == "invalid_cursor"


# -- by expiry window --------------------------------------------------------------------


def test_expiry_window_returns_exactly_what_is_due(inventory, dynamo_calls):
    start = BASE  # 2027-03-10T00:00:00Z
    end = BASE + datetime.timedelta(days=3)  # 2027-03-13T00:00:00Z, exclusive
    second = datetime.timedelta(seconds=1)
    due_times = [
        start,  # inclusive lower bound
        start + second,
        start + datetime.timedelta(hours=11),
        start + datetime.timedelta(days=1, hours=5),
        start + datetime.timedelta(days=1, hours=23, minutes=59, seconds=59),
        start + datetime.timedelta(days=2),
        start + datetime.timedelta(days=2, hours=12),
        end - second,  # last second of the window
    ]
    due = [
        put_issued(inventory, not_after=moment, serial=serial_in_shard(i % SHARDS))
        for i, moment in enumerate(due_times + due_times)  # every time in two shards
    ]
    assert {serial_of(r) % SHARDS for r in due} == set(range(SHARDS))

    not_due = [
        put_issued(inventory, not_after=start - second, serial=serial_in_shard(1)),
        put_issued(
            inventory, not_after=start - datetime.timedelta(days=1), serial=serial_in_shard(0)
        ),
        put_issued(inventory, not_after=end, serial=serial_in_shard(2)),  # exclusive upper bound
        put_issued(inventory, not_after=end + second, serial=serial_in_shard(3)),
        put_issued(
            inventory, not_after=end + datetime.timedelta(days=1), serial=serial_in_shard(4)
        ),
        put_issued(inventory, "other", not_after=start + datetime.timedelta(hours=1)),
    ]
    revoked = put_issued(inventory, not_after=start + datetime.timedelta(hours=2))
    inventory.mark_revoked(revoked, "keyCompromise", BASE)
    superseded_previous = put_issued(inventory, not_after=start + datetime.timedelta(hours=3))
    renewal = put_pending(inventory)
    inventory.record_issued(
        renewal,
        issued_serial=serial_of(renewal),
        previous=superseded_previous,
        ca_id="local-dev",
        issuer="CN=issuer",
        subject="CN=dev-1",
        sans=[],
        not_before=BASE,
        not_after=BASE + datetime.timedelta(days=365),
        certificate_id="f" * 40,
        sha256_fingerprint="f" * 64,
        certificate_pem="pem",
        chain_pem="",
    )
    failed = put_pending(inventory)
    inventory.mark_failed(failed, "ca_unavailable", "down")
    put_pending(inventory)
    dynamo_calls.clear()

    found = list(inventory.expiring("acme", start, end))
    assert sorted(r.pk for r in found) == sorted(r.pk for r in due)
    assert not {r.pk for r in found} & {r.pk for r in not_due}
    assert all(r.status == "ISSUED" and start <= r.not_after < end for r in found)
    assert all(r.certificate_pem for r in found), "full records, not index projections"

    assert_served_without_scan(dynamo_calls, "by-expiry")
    queries = [kwargs for name, kwargs in dynamo_calls.calls if name == "Query"]
    days_touched = (end.date() - start.date()).days + 1
    assert len(queries) <= days_touched * SHARDS
    loaded = sum(
        len(table["Keys"])
        for name, kwargs in dynamo_calls.calls
        if name == "BatchGetItem"
        for table in kwargs["RequestItems"].values()
    )
    assert loaded == len(due), "O(due): only due records are read from the table"


def test_expiry_window_with_sub_second_bounds(inventory):
    at = BASE + datetime.timedelta(hours=6)
    half = datetime.timedelta(milliseconds=500)
    before = put_issued(inventory, not_after=at)
    after = put_issued(inventory, not_after=at + datetime.timedelta(seconds=1))
    # [at + 0.5 s, at + 1.5 s) holds only `after`
    found = {r.pk for r in inventory.expiring("acme", at + half, at + 3 * half)}
    assert found == {after.pk}
    # [at - 0.5 s, at + 0.5 s) holds only `before`
    found = {r.pk for r in inventory.expiring("acme", at - half, at + half)}
    assert found == {before.pk}


def test_expiry_window_longer_than_400_days_is_refused(inventory):
    with pytest.raises(RequestRejected) as caught:
        list(inventory.expiring("acme", BASE, BASE + datetime.timedelta(days=401)))
    assert caught.value.code == "invalid_window"


def test_expiry_buckets_spread_over_shards(inventory):
    records = [
        put_issued(inventory, not_after=BASE + datetime.timedelta(hours=1)) for _ in range(48)
    ]
    buckets = Counter(r.expiry_bucket for r in records)
    assert all(b.startswith("acme#2027-03-10#") for b in buckets)
    assert len(buckets) >= 5, f"48 random serials landed in only {len(buckets)} shards"
    assert {int(b.rsplit("#", 1)[1]) for b in buckets} <= set(range(SHARDS))
    for record in records:
        shard = inventory_keys.write_shard(serial_of(record), SHARDS)
        assert record.expiry_bucket == inventory_keys.expiry_bucket("acme", "2027-03-10", shard)
        assert record.status_key.endswith(f"#ISSUED#{shard:03d}")
    # the records are really indexed under those keys
    stored = {hit.pk for bucket in buckets for hit in CertificateRecord.by_expiry.query(bucket)}
    assert stored == {r.pk for r in records}


# -- by status and CA --------------------------------------------------------------------


def test_serials_by_status_and_ca(inventory, dynamo_calls):
    issued = [put_issued(inventory) for _ in range(6)]
    other_ca = put_issued(inventory, ca_id="kms-prod")
    for record in issued[:2]:
        inventory.mark_revoked(record, "superseded", BASE)
    pending = put_pending(inventory)
    failed = put_pending(inventory)
    inventory.mark_failed(failed, "signing_failed", "boom")
    put_issued(inventory, "other")
    dynamo_calls.clear()

    def serials(status: CertificateStatus, ca_id: str = "local-dev") -> set[str]:
        return set(inventory.serials_by_status("acme", ca_id, status))

    assert serials(CertificateStatus.ISSUED) == {r.serial for r in issued[2:]}
    assert serials(CertificateStatus.REVOKED) == {r.serial for r in issued[:2]}
    assert serials(CertificateStatus.PENDING) == {pending.serial}
    assert serials(CertificateStatus.FAILED) == {failed.serial}
    assert serials(CertificateStatus.ISSUED, "kms-prod") == {other_ca.serial}
    assert serials(CertificateStatus.REVOKED, "kms-prod") == set()
    assert_served_without_scan(dynamo_calls, "by-status-ca")
    assert len(dynamo_calls.calls) == 6 * SHARDS


# -- writes ------------------------------------------------------------------------------


def test_create_pending_never_overwrites(inventory):
    serial = new_serial_number()
    first = put_issued(inventory, serial=serial, device_id="first")
    with pytest.raises(Conflict) as caught:
        put_pending(inventory, serial=serial, device_id="second")
    assert caught.value.code == "serial_collision"
    stored = inventory.get("acme", serial)
    assert stored.status == "ISSUED" and stored.device_id == "first"
    assert stored.certificate_id == first.certificate_id
    # the same serial in another tenant is another record
    assert put_pending(inventory, "other", serial=serial).pk != first.pk


def test_transitions_are_conditional(inventory):
    record = put_issued(inventory)
    stale = inventory.get("acme", serial_of(record))
    inventory.mark_revoked(record, "keyCompromise", BASE)
    with pytest.raises(Conflict):
        inventory.mark_revoked(stale, "superseded", BASE)
    stored = inventory.get("acme", serial_of(record))
    assert stored.status == "REVOKED" and stored.revocation_reason == "keyCompromise"
    assert stored.expiry_bucket is None and stored.expiry_key is None
