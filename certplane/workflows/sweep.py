"""The renewal sweep: per tenant, walk the sparse expiry index over [now - lookback, horizon).

For each live certificate found, at the sweep's single moment `now`:
- past notAfter: ISSUED → EXPIRED and "Certificate Expired";
- its profile auto-renews and fewer than `renew_before_days` remain: renewed for the same key
  (idempotency key per certificate, so a retried step never renews twice);
- otherwise, once it is within a threshold (30/14/7/1 days by default): "Certificate Expiring"
  for the tightest threshold it has crossed, at most once per (certificate, threshold) — a
  conditional put of a marker item decides, so concurrent or repeated sweeps stay silent.

A step reads at most `sweep_page_size` records (and a bounded number of index partitions) and
returns a cursor (day, write shard, last key), so no step grows with the fleet.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError

from certplane.config import Settings
from certplane.errors import CertplaneError
from certplane.events import DetailType, build_detail, certificate_summary
from certplane.inventory import CertificateRecord
from certplane.inventory import keys as inventory_keys
from certplane.lifecycle import Lifecycle, RenewRequest
from certplane.model import CertificateStatus
from certplane.workflows import steps, store

logger = logging.getLogger(__name__)
ACTOR = "certplane-renewal-sweep"
MAX_PARTITIONS_PER_STEP = 64
NOTICE_RETENTION = datetime.timedelta(days=30)
COUNTERS = ("examined", "expiring", "expired", "renewed", "renew_failed")


@dataclass
class RenewalSweep:
    """The sweep's steps over one lifecycle (see the module doc)."""

    lifecycle: Lifecycle
    clock: Callable[[], datetime.datetime] | None = None  # else steps.utc_now

    @property
    def settings(self) -> Settings:
        return self.lifecycle.settings

    def horizon_days(self) -> int:
        """How far ahead to look: the widest threshold or auto-renew window."""
        renew = [p.renew_before_days for p in self.settings.profiles if p.auto_renew]
        return max([*self.settings.workflows.expiring_thresholds_days, *renew])

    # -- steps ----------------------------------------------------------------------------

    def plan(self, state: dict[str, Any]) -> dict[str, Any]:
        """One work item per tenant (all, or the `tenants` the input names), one `now`."""
        known = [tenant.id for tenant in self.settings.tenants]
        wanted = state.get("tenants") or known
        tenants = [tenant for tenant in known if tenant in wanted]
        now = (self.clock or steps.utc_now)()
        start = now - datetime.timedelta(days=self.settings.workflows.expired_lookback_days)
        end = now + datetime.timedelta(days=self.horizon_days() + 1)
        return {
            "now": steps.format_time(now),
            "tenants": [
                {
                    "tenant": tenant,
                    "now": steps.format_time(now),
                    "start": steps.format_time(start),
                    "end": steps.format_time(end),
                    "cursor": {"day": start.date().isoformat(), "shard": 0, "after": None},
                    "counts": dict.fromkeys(COUNTERS, 0),
                    "done": False,
                }
                for tenant in tenants
            ],
        }

    def sweep_page(self, state: dict[str, Any]) -> dict[str, Any]:
        """Process up to a page of due records from the cursor on; advance the cursor."""
        tenant = state["tenant"]
        now = steps.parse_time(state["now"])
        low = inventory_keys.expiry_sort_key(steps.parse_time(state["start"]), 0)
        end = steps.parse_time(state["end"])
        high = inventory_keys.expiry_sort_key(end, 0)
        cursor = dict(state["cursor"])
        counts = dict(state["counts"])
        page_size = self.settings.workflows.sweep_page_size
        shards = self.lifecycle.inventory.shards
        processed = 0
        for _ in range(MAX_PARTITIONS_PER_STEP):
            day = datetime.date.fromisoformat(cursor["day"])
            if day > end.date():
                return {**state, "cursor": cursor, "counts": counts, "done": True}
            bucket = inventory_keys.expiry_bucket(tenant, cursor["day"], cursor["shard"])
            after = cursor["after"]
            budget = page_size - processed
            hits = list(
                CertificateRecord.by_expiry.query(
                    bucket,
                    CertificateRecord.expiry_key > after
                    if after
                    else CertificateRecord.expiry_key >= low,
                    filter_condition=CertificateRecord.expiry_key < high,
                    limit=budget,
                )
            )
            for record in CertificateRecord.batch_get([hit.pk for hit in hits]):
                self._handle(record, now, counts)
            processed += len(hits)
            if hits and len(hits) == budget:
                # The page filled up inside this partition: resume after its last key.
                cursor["after"] = hits[-1].expiry_key
                return {**state, "cursor": cursor, "counts": counts, "done": False}
            cursor = _next_partition(cursor, shards)
        return {**state, "cursor": cursor, "counts": counts, "done": False}

    def summarize(self, state: dict[str, Any]) -> dict[str, Any]:
        totals = dict.fromkeys(COUNTERS, 0)
        for tenant in state.get("tenants", []):
            for name in COUNTERS:
                totals[name] += int(tenant.get("counts", {}).get(name, 0))
        return {
            "now": state.get("now"),
            "tenants": [t["tenant"] for t in state.get("tenants", [])],
            "counts": totals,
        }

    # -- one certificate ------------------------------------------------------------------

    def _handle(self, record: CertificateRecord, now: datetime.datetime, counts: dict) -> None:
        if record.status != CertificateStatus.ISSUED.value or record.not_after is None:
            return  # it left the live state since the index was read
        counts["examined"] += 1
        remaining = record.not_after - now
        if remaining <= datetime.timedelta(0):
            self._expire(record, counts)
            return
        profile = self.settings.profiles_by_name.get(record.profile)
        if (
            profile is not None
            and profile.auto_renew
            and remaining <= datetime.timedelta(days=profile.renew_before_days)
            and self._renew(record, counts)
        ):
            return
        crossed = [
            days
            for days in self.settings.workflows.expiring_thresholds_days
            if remaining <= datetime.timedelta(days=days)
        ]
        if crossed and self._first_notice(record, min(crossed)):
            counts["expiring"] += 1
            self._publish(
                DetailType.EXPIRING,
                record,
                daysRemaining=math.floor(remaining / datetime.timedelta(days=1)),
                threshold=min(crossed),
            )

    def _expire(self, record: CertificateRecord, counts: dict) -> None:
        try:
            expired = self.lifecycle.inventory.mark_expired(record)
        except CertplaneError as error:  # changed meanwhile (renewed, revoked): not ours now
            logger.info("not expiring %s: %s", record.serial, error.message)
            return
        counts["expired"] += 1
        self._publish(DetailType.EXPIRED, expired)

    def _renew(self, record: CertificateRecord, counts: dict) -> bool:
        try:
            self.lifecycle.renew(
                RenewRequest(
                    tenant=record.tenant,
                    reference=record.serial,
                    requester=ACTOR,
                    idempotency_key=f"auto-renew-{record.serial}",
                )
            )
        except CertplaneError as error:  # the lifecycle already put the failure event
            logger.warning("auto-renewal of %s failed: %s", record.serial, error.message)
            counts["renew_failed"] += 1
            return False
        counts["renewed"] += 1
        return True

    def _first_notice(self, record: CertificateRecord, threshold: int) -> bool:
        """True for the one sweep that wins the marker of (certificate, threshold)."""
        item_id = f"{record.serial}#{threshold}"
        marker = store.WorkflowItem(
            store.item_key(record.tenant, store.NOTICE, item_id),
            tenant=record.tenant,
            kind=store.NOTICE,
            item_id=item_id,
            created_at=store.now(),
            expire_at=int((record.not_after + NOTICE_RETENTION).timestamp()),
        )
        try:
            marker.save(condition=store.WorkflowItem.pk.does_not_exist())
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _publish(self, detail_type: DetailType, record: CertificateRecord, **body: Any) -> None:
        self.lifecycle.publisher.publish(
            detail_type,
            build_detail(record.tenant, ACTOR, certificate=certificate_summary(record), **body),
        )


def _next_partition(cursor: dict[str, Any], shards: int) -> dict[str, Any]:
    if cursor["shard"] + 1 < shards:
        return {"day": cursor["day"], "shard": cursor["shard"] + 1, "after": None}
    day = datetime.date.fromisoformat(cursor["day"]) + datetime.timedelta(days=1)
    return {"day": day.isoformat(), "shard": 0, "after": None}


def steps_of(sweep: RenewalSweep) -> dict[str, steps.Step]:
    return {"plan": sweep.plan, "sweep_page": sweep.sweep_page, "summarize": sweep.summarize}
