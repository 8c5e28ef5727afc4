"""renewal_discovery_scale_ratio: time to find what is due with 10x the inventory and the same
number due, over the time at 1x (goal ≤ 1.5: discovery is O(due), not O(inventory)).

Two tenants share one table: one holds N certificates, the other 10N, each with the same
number due in the window; `Inventory.expiring` is timed for both, interleaved, in the same run.
They share the table because moto answers a Query by walking the whole table (real DynamoDB
reads only the key range), so two tables of different sizes would measure moto, not certplane.
"""

from __future__ import annotations

import datetime
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.connection.base import Connection

from bench.aws import embedded_aws
from bench.timing import interleaved, median_ratio
from certplane.inventory import CertificateRecord, Inventory, keys
from certplane.model import CertificateStatus, format_serial

WINDOW_START_DAYS = 30
WINDOW_DAYS = 1


@contextmanager
def counting_reads() -> Iterator[Counter[str]]:
    """DynamoDB requests and items read (Query ScannedCount, BatchGetItem items): what real
    DynamoDB bills and what would grow if discovery were O(inventory)."""
    counts: Counter[str] = Counter()
    original = Connection._make_api_call

    def counting(self: Connection, operation_name: str, operation_kwargs: dict) -> dict:
        response = original(self, operation_name, operation_kwargs)
        counts[f"{operation_name}_requests"] += 1
        if operation_name == "Query":
            counts["items_read"] += int(response.get("ScannedCount", 0))
        elif operation_name == "BatchGetItem":
            counts["items_read"] += sum(len(v) for v in response.get("Responses", {}).values())
        return response

    Connection._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        Connection._make_api_call = original  # type: ignore[method-assign]


def _record(inventory: Inventory, tenant: str, serial: int, not_after: datetime.datetime) -> Any:
    now = datetime.datetime.now(datetime.UTC)
    record = CertificateRecord(
        pk=keys.record_key(tenant, serial),
        tenant=tenant,
        serial=format_serial(serial),
        status=CertificateStatus.PENDING.value,
        profile="device",
        ca_id="local-dev",
        route=["local-dev"],
        device_id=f"device-{serial:x}",
        requester="bench",
        key_algorithm="P-256",
        created_at=now,
        updated_at=now,
        created_key=keys.created_key(now, serial),
        device_key=keys.device_key(tenant, f"device-{serial:x}"),
    )
    # The same index keys issuance writes (expiry bucket and shard, status, issuer).
    inventory._apply_issued(
        record,
        ca_id="local-dev",
        issuer="CN=bench",
        subject=f"CN=device-{serial:x}",
        sans=[],
        not_before=now,
        not_after=not_after,
        certificate_id=f"{serial:040x}"[-40:],
        sha256_fingerprint="00" * 32,
        certificate_pem="",
        chain_pem="",
    )
    return record


def _load(
    inventory: Inventory, tenant: str, total: int, due: int, start: datetime.datetime
) -> None:
    rng = random.Random(tenant)
    window = WINDOW_DAYS * 86400
    with CertificateRecord.batch_write() as batch:
        for index in range(total):
            serial = rng.getrandbits(63) | (1 << 63)
            if index < due:
                offset = datetime.timedelta(seconds=rng.randrange(window))
            else:  # due later: between the window's end and a year out
                offset = datetime.timedelta(days=WINDOW_DAYS + 1 + rng.random() * 350)
            not_after = (start + offset).replace(microsecond=0)
            batch.save(_record(inventory, tenant, serial, not_after))


def measure(base: int = 500, due: int = 50, rounds: int = 5, shards: int = 8) -> dict[str, Any]:
    """Median seconds of `expiring` over the window at 1x and 10x, and their paired ratio."""
    with embedded_aws():
        inventory = Inventory(shards)
        start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=WINDOW_START_DAYS)
        end = start + datetime.timedelta(days=WINDOW_DAYS)
        _load(inventory, "bench-1x", base, due, start)
        _load(inventory, "bench-10x", base * 10, due, start)
        found: dict[str, int] = {}

        def discover(tenant: str) -> Any:
            def run() -> None:
                found[tenant] = sum(1 for _ in inventory.expiring(tenant, start, end))

            return run

        samples = interleaved({"1x": discover("bench-1x"), "10x": discover("bench-10x")}, rounds)
        reads = {}
        for label in ("1x", "10x"):
            with counting_reads() as counts:
                discover(f"bench-{label}")()
            reads[label] = dict(counts)
    if found != {"bench-1x": due, "bench-10x": due}:
        raise RuntimeError(f"discovery found {found}, expected {due} due in each tenant")
    return {
        "renewal_discovery_scale_ratio": round(median_ratio(samples["10x"], samples["1x"]), 3),
        "renewal_discovery_seconds": {
            "1x": round(statistics.median(samples["1x"]), 4),
            "10x": round(statistics.median(samples["10x"]), 4),
        },
        "renewal_discovery_items_read_ratio": round(
            reads["10x"]["items_read"] / max(1, reads["1x"]["items_read"]), 3
        ),
        "renewal_discovery_reads": reads,
        "renewal_discovery_setup": {
            "inventory_1x": base,
            "inventory_10x": base * 10,
            "due": due,
            "window_days": WINDOW_DAYS,
            "expiry_shards": shards,
        },
    }
