"""Bulk operations: revoke or reissue every certificate of a CA, a profile or a device set.

For a CA compromise (revoke by CA), a CA migration or a move to ML-DSA (switch the profile's
route, then reissue by profile: each certificate is renewed for the same key through the
profile as configured now). The state machine selects a page, runs a Map over it (bounded
concurrency), and loops; every certificate updates the progress item atomically, so
`GET /v1/bulk/{id}` and `certplane bulk status` show processed/total while it runs.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from certplane.errors import CertplaneError, NotFound, RequestRejected, ServiceUnavailable
from certplane.inventory import CertificateRecord
from certplane.inventory import keys as inventory_keys
from certplane.lifecycle import Lifecycle, RenewRequest
from certplane.model import REVOCATION_REASONS, CertificateStatus, iso_timestamp
from certplane.resources import BULK_WORKFLOW
from certplane.runtime import Runtime
from certplane.workflows import steps, store
from certplane.workflows.control import WorkflowControl

ACTIONS = ("revoke", "reissue")
MAX_DEVICES = 1000
RUNNING, COMPLETED = "RUNNING", "COMPLETED"
RETENTION = datetime.timedelta(days=365)


def bulk_view(item: store.WorkflowItem) -> dict[str, Any]:
    request = dict(item.request or {})
    processed = int(item.done) + int(item.failed)
    return {
        "id": item.item_id,
        "status": item.status,
        "action": request.get("action"),
        "selector": request.get("selector"),
        "reason": request.get("reason"),
        "requester": item.requester,
        "created_at": iso_timestamp(item.created_at),
        "updated_at": iso_timestamp(item.updated_at),
        "total": int(item.total),
        "selection_complete": bool(item.selection_complete),
        "done": int(item.done),
        "failed": int(item.failed),
        "processed": processed,
        "progress": f"{processed}/{int(item.total)}",
        "last_error": item.last_error,
    }


@dataclass
class BulkOperations:
    """Start and read bulk operations (management API side)."""

    lifecycle: Lifecycle
    control: WorkflowControl = field(default_factory=WorkflowControl)

    def start(
        self,
        tenant: str,
        requester: str,
        action: str,
        selector: dict[str, Any],
        reason: str | None = None,
    ) -> store.WorkflowItem:
        selector = {k: v for k, v in selector.items() if v not in (None, [], "")}
        self._validate(tenant, action, selector, reason)
        operation_id = uuid.uuid4().hex
        now = store.now()
        item = store.WorkflowItem(
            store.item_key(tenant, store.BULK, operation_id),
            tenant=tenant,
            kind=store.BULK,
            item_id=operation_id,
            status=RUNNING,
            list_key=store.list_key(tenant, store.BULK),
            created_key=store.created_key(now, operation_id),
            created_at=now,
            updated_at=now,
            requester=requester,
            request={"action": action, "selector": selector, "reason": reason},
            expire_at=int((now + RETENTION).timestamp()),
        )
        item.save(condition=store.WorkflowItem.pk.does_not_exist())
        operation = {
            "tenant": tenant,
            "id": operation_id,
            "action": action,
            "reason": reason or "unspecified",
            "requester": requester,
            "started": now.isoformat(),
        }
        try:
            execution_arn = self.control.start(
                BULK_WORKFLOW,
                f"bulk-{operation_id}",
                {"operation": operation, "selector": selector, "cursor": None},
            )
        except Exception:  # nothing will run it: no operation shows as RUNNING forever
            item.delete()
            raise
        # An update, not a save: the first page may already have been counted.
        item.update(actions=[store.WorkflowItem.execution_arn.set(execution_arn)])
        return item

    def _validate(
        self, tenant: str, action: str, selector: dict[str, Any], reason: str | None
    ) -> None:
        settings = self.lifecycle.settings
        if action not in ACTIONS:
            raise RequestRejected("invalid_action", f"action must be one of {ACTIONS}")
        if len(selector) != 1 or next(iter(selector)) not in ("ca", "profile", "devices"):
            raise RequestRejected("invalid_selector", "name exactly one of ca, profile, devices")
        profiles = settings.tenant_profiles(tenant)
        if "ca" in selector and selector["ca"] not in {ca for p in profiles for ca in p.route}:
            raise RequestRejected("unknown_ca", f"no CA {selector['ca']!r} serves this tenant")
        if "profile" in selector and settings.tenant_profile(tenant, selector["profile"]) is None:
            raise RequestRejected("unknown_profile", f"no profile {selector['profile']!r}")
        devices = selector.get("devices")
        if devices is not None and (
            not isinstance(devices, list)
            or len(devices) > MAX_DEVICES
            or not all(isinstance(d, str) and 0 < len(d) <= 128 for d in devices)
        ):
            raise RequestRejected("invalid_devices", f"devices: up to {MAX_DEVICES} device ids")
        if action == "revoke" and (reason or "unspecified") not in REVOCATION_REASONS:
            raise RequestRejected("invalid_reason", f"unknown revocation reason {reason!r}")

    def get(self, tenant: str, operation_id: str) -> store.WorkflowItem:
        try:
            return store.WorkflowItem.get(
                store.item_key(tenant, store.BULK, operation_id), consistent_read=True
            )
        except store.WorkflowItem.DoesNotExist:
            raise NotFound("operation_not_found", f"no bulk operation {operation_id}") from None

    def list(self, tenant: str, limit: int = 50) -> list[store.WorkflowItem]:
        return list(
            store.WorkflowItem.by_list.query(
                store.list_key(tenant, store.BULK), scan_index_forward=False, limit=limit
            )
        )


@dataclass
class BulkSteps:
    """The state machine's side: select pages, apply to one certificate, finish."""

    lifecycle: Lifecycle

    @property
    def page_size(self) -> int:
        return self.lifecycle.settings.workflows.bulk_page_size

    def select(self, state: dict[str, Any]) -> dict[str, Any]:
        operation, selector = state["operation"], state["selector"]
        if "ca" in selector:
            items, cursor = self._by_ca(operation, selector["ca"], state.get("cursor"))
        elif "profile" in selector:
            items, cursor = self._by_profile(operation["tenant"], selector["profile"], state)
        else:
            items, cursor = self._by_devices(operation["tenant"], selector["devices"], state)
        done = cursor is None
        actions = [
            store.WorkflowItem.total.add(len(items)),
            store.WorkflowItem.updated_at.set(store.now()),
        ]
        if done:
            actions.append(store.WorkflowItem.selection_complete.set(1))
        self._progress(operation).update(actions=actions)
        return {**state, "items": items, "cursor": cursor, "done": done}

    def _statuses(self, operation: dict[str, Any]) -> list[CertificateStatus]:
        if operation["action"] == "revoke":  # a superseded certificate is still valid
            return [CertificateStatus.ISSUED, CertificateStatus.SUPERSEDED]
        return [CertificateStatus.ISSUED]

    def _by_ca(
        self, operation: dict[str, Any], ca_id: str, cursor: dict[str, Any] | None
    ) -> tuple[list[str], dict[str, Any] | None]:
        statuses = self._statuses(operation)
        cursor = cursor or {"status": 0, "shard": 0, "after": None}
        shards = self.lifecycle.inventory.shards
        items: list[str] = []
        while cursor["status"] < len(statuses):
            key = inventory_keys.status_key(
                operation["tenant"], ca_id, statuses[cursor["status"]], cursor["shard"]
            )
            budget = self.page_size - len(items)
            condition = CertificateRecord.serial > cursor["after"] if cursor["after"] else None
            hits = [
                hit.serial
                for hit in CertificateRecord.by_status_ca.query(key, condition, limit=budget)
            ]
            items.extend(hits)
            if hits and len(hits) == budget:
                return items, {**cursor, "after": hits[-1]}
            shard = cursor["shard"] + 1
            status = cursor["status"] + (shard == shards)
            cursor = {"status": status, "shard": shard % shards, "after": None}
        return items, None

    def _by_profile(
        self, tenant: str, profile: str, state: dict[str, Any]
    ) -> tuple[list[str], str | None]:
        page = self.lifecycle.inventory.list(
            tenant,
            profile=profile,
            status=CertificateStatus.ISSUED.value,
            limit=self.page_size,
            cursor=state.get("cursor"),
        )
        return [record.serial for record in page.items], page.cursor

    def _by_devices(
        self, tenant: str, devices: list[str], state: dict[str, Any]
    ) -> tuple[list[str], int | None]:
        index = int(state.get("cursor") or 0)
        items: list[str] = []
        while index < len(devices) and len(items) < self.page_size:
            page = self.lifecycle.inventory.list(
                tenant, device_id=devices[index], status=CertificateStatus.ISSUED.value, limit=50
            )
            items.extend(record.serial for record in page.items)
            index += 1
        return items, (index if index < len(devices) else None)

    def apply(self, state: dict[str, Any]) -> dict[str, Any]:
        """Revoke or reissue one certificate; a refusal counts as failed, never stops the Map."""
        operation, serial = state["operation"], state["serial"]
        try:
            outcome = self._apply(operation, serial)
        except ServiceUnavailable:
            raise  # transient: the state machine retries, then counts it as failed
        except CertplaneError as error:
            self._count(operation, "failed", f"{serial}: {error.code}: {error.message}")
            return {"serial": serial, "outcome": "failed", "error": error.code}
        self._count(operation, "done")
        return {"serial": serial, "outcome": outcome}

    def _apply(self, operation: dict[str, Any], serial: str) -> str:
        tenant = operation["tenant"]
        record = self.lifecycle.inventory.find(tenant, serial)
        if record.created_at >= steps.parse_time(operation["started"]):
            return "skipped"  # issued by this operation (a reissue) or after it began
        if operation["action"] == "revoke":
            if record.status == CertificateStatus.REVOKED.value:
                return "skipped"
            self.lifecycle.revoke(tenant, serial, operation["reason"], operation["requester"])
            return "revoked"
        if record.status != CertificateStatus.ISSUED.value:
            return "skipped"
        self.lifecycle.renew(
            RenewRequest(
                tenant=tenant,
                reference=serial,
                requester=operation["requester"],
                idempotency_key=f"bulk-{operation['id']}-{serial}",
            )
        )
        return "reissued"

    def count_failure(self, state: dict[str, Any]) -> dict[str, Any]:
        error = state.get("error") or {}
        self._count(state["operation"], "failed", f"{state['serial']}: {error.get('Error')}")
        return {"serial": state["serial"], "outcome": "failed"}

    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        item = self._progress(state["operation"])
        item.update(
            actions=[
                store.WorkflowItem.status.set(COMPLETED),
                store.WorkflowItem.updated_at.set(store.now()),
            ]
        )
        item.refresh(consistent_read=True)
        return bulk_view(item)

    def _progress(self, operation: dict[str, Any]) -> store.WorkflowItem:
        return store.WorkflowItem(store.item_key(operation["tenant"], store.BULK, operation["id"]))

    def _count(self, operation: dict[str, Any], counter: str, error: str | None = None) -> None:
        actions = [
            getattr(store.WorkflowItem, counter).add(1),
            store.WorkflowItem.updated_at.set(store.now()),
        ]
        if error:
            actions.append(store.WorkflowItem.last_error.set(error[:500]))
        self._progress(operation).update(actions=actions)


def from_runtime(runtime: Runtime) -> BulkSteps:
    return BulkSteps(runtime.lifecycle)


def steps_of(bulk: BulkSteps) -> dict[str, steps.Step]:
    return {
        "select": bulk.select,
        "apply": bulk.apply,
        "count_failure": bulk.count_failure,
        "finish": bulk.finish,
    }
