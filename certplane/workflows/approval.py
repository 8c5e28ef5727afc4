"""Approval-gated issuance: a request waits (task token) until a person approves or denies it.

The management API records the request as a PENDING approval item (tenant in its key) and
starts the workflow; the first step stores the task token on the item; the decision endpoint
answers the token (SendTaskSuccess / SendTaskFailure). Approved: the lifecycle issues (policy
applies then, as for any request) and the item holds the serial. Denied or timed out: the item
is FAILED and a "Certificate Issuance Failed" event says why.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, UpdateError

from certplane.errors import Conflict, NotFound, RequestRejected
from certplane.events import DetailType, build_detail
from certplane.lifecycle import IssueRequest, Lifecycle
from certplane.model import iso_timestamp
from certplane.policy import load_csr
from certplane.resources import APPROVAL_WORKFLOW
from certplane.runtime import Runtime
from certplane.workflows import definitions, steps, store
from certplane.workflows.control import WorkflowControl

PENDING, APPROVED, DENIED, ISSUED, FAILED = "PENDING", "APPROVED", "DENIED", "ISSUED", "FAILED"
DECISIONS = ("approve", "deny")
RETENTION = datetime.timedelta(days=90)
REQUEST_FIELDS = ("profile", "csr", "validity_days", "device_id", "owner", "tags")


def approval_view(item: store.WorkflowItem) -> dict[str, Any]:
    request = dict(item.request or {})
    return {
        "id": item.item_id,
        "status": item.status,
        "profile": request.get("profile"),
        "device_id": request.get("device_id"),
        "owner": request.get("owner"),
        "requester": item.requester,
        "created_at": iso_timestamp(item.created_at),
        "decided_by": item.decided_by,
        "reason": item.reason,
        "serial": item.serial,
        "failure": item.failure,
    }


@dataclass
class Approvals:
    """The approval items of every tenant and the decisions on them (management API side)."""

    lifecycle: Lifecycle
    control: WorkflowControl = field(default_factory=WorkflowControl)

    @property
    def control_available(self) -> bool:
        return self.control.available(APPROVAL_WORKFLOW)

    def submit_once(self, request: IssueRequest, request_der: bytes) -> store.WorkflowItem:
        """The approval of this exact request, submitted on its first arrival.

        RFC 7030 §4.2.3: an EST client answered 202 repeats the same request after
        Retry-After; the approval id is a digest of tenant, profile and CSR, so the repeat
        finds the approval (and, once issued, its certificate) instead of a new one.
        """
        digest = hashlib.sha256(
            b"\0".join([request.tenant.encode(), request.profile.encode(), request_der])
        )
        approval_id = digest.hexdigest()[:32]
        try:
            return self.get(request.tenant, approval_id)
        except NotFound:
            pass
        try:
            return self.submit(request, approval_id)
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return self.get(request.tenant, approval_id)  # a concurrent repeat won the race

    def submit(self, request: IssueRequest, approval_id: str | None = None) -> store.WorkflowItem:
        """Record a request for a profile that requires approval and start its workflow."""
        profile = self.lifecycle.settings.tenant_profile(request.tenant, request.profile)
        if profile is None:
            raise RequestRejected(
                "unknown_profile", f"profile {request.profile!r} does not exist for this tenant"
            )
        load_csr(request.csr)  # a malformed CSR is refused now, not after someone approves it
        approval_id = approval_id or uuid.uuid4().hex
        now = store.now()
        item = store.WorkflowItem(
            store.item_key(request.tenant, store.APPROVAL, approval_id),
            tenant=request.tenant,
            kind=store.APPROVAL,
            item_id=approval_id,
            status=PENDING,
            list_key=store.list_key(request.tenant, store.APPROVAL, PENDING),
            created_key=store.created_key(now, approval_id),
            created_at=now,
            updated_at=now,
            requester=request.requester,
            request={name: getattr(request, name) for name in REQUEST_FIELDS}
            | {"profile": profile.name},
            expire_at=int((now + RETENTION).timestamp()),
        )
        item.save(condition=store.WorkflowItem.pk.does_not_exist())
        try:
            execution_arn = self.control.start(
                APPROVAL_WORKFLOW,
                f"approval-{approval_id}",
                {"tenant": request.tenant, "id": approval_id},
            )
        except Exception:  # no workflow waits for it: a repeat must be able to start over
            item.delete()
            raise
        # An update, not a save: the first step may already have stored its task token.
        item.update(actions=[store.WorkflowItem.execution_arn.set(execution_arn)])
        return item

    def get(self, tenant: str, approval_id: str) -> store.WorkflowItem:
        try:
            return store.WorkflowItem.get(
                store.item_key(tenant, store.APPROVAL, approval_id), consistent_read=True
            )
        except store.WorkflowItem.DoesNotExist:
            raise NotFound(
                "approval_not_found", f"no approval {approval_id} in this tenant"
            ) from None

    def list(
        self, tenant: str, status: str = PENDING, limit: int = 100
    ) -> list[store.WorkflowItem]:
        return list(
            store.WorkflowItem.by_list.query(
                store.list_key(tenant, store.APPROVAL, status.upper()),
                scan_index_forward=False,
                limit=limit,
            )
        )

    def decide(
        self, tenant: str, approval_id: str, decision: str, decider: str, reason: str | None
    ) -> store.WorkflowItem:
        """Answer the waiting workflow; a second decision (or one too early) is a 409."""
        if decision not in DECISIONS:
            raise RequestRejected("invalid_decision", f"decision must be one of {DECISIONS}")
        item = self.get(tenant, approval_id)
        if item.status != PENDING:
            raise Conflict("already_decided", f"approval {approval_id} is {item.status}")
        if not item.task_token:
            raise Conflict("not_ready", "the workflow is not waiting yet; retry in a moment")
        token = item.task_token
        status = APPROVED if decision == "approve" else DENIED
        # Answer first: a token answered once cannot be answered again, so of two racing
        # deciders only one gets past here.
        try:
            if decision == "approve":
                self.control.send_success(token, {"decision": decision, "decided_by": decider})
            else:
                self.control.send_failure(token, definitions.DENIED, reason or "denied")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise Conflict(
                "workflow_not_waiting", f"the approval workflow no longer waits ({code})"
            ) from None
        try:
            _transition(item, status, decided_by=decider, reason=reason, expected=PENDING)
        except Conflict:  # the workflow already moved on (issued or failed): keep its status
            actions = [store.WorkflowItem.decided_by.set(decider)]
            if reason:
                actions.append(store.WorkflowItem.reason.set(reason))
            item.update(actions=actions)
        return item


@dataclass
class ApprovalSteps:
    """The state machine's side."""

    lifecycle: Lifecycle

    def _item(self, state: dict[str, Any]) -> store.WorkflowItem:
        return store.WorkflowItem.get(
            store.item_key(state["tenant"], store.APPROVAL, state["id"]), consistent_read=True
        )

    def await_decision(self, state: dict[str, Any], token: str) -> dict[str, Any]:
        item = self._item(state)
        item.update(
            actions=[store.WorkflowItem.task_token.set(token)],
            condition=store.WorkflowItem.status == PENDING,
        )
        return {}

    def issue(self, state: dict[str, Any]) -> dict[str, Any]:
        item = self._item(state)
        request = dict(item.request or {})
        record = self.lifecycle.issue(
            IssueRequest(
                tenant=item.tenant,
                requester=item.requester or "unknown",
                idempotency_key=f"approval-{item.item_id}",
                **{name: request.get(name) for name in REQUEST_FIELDS if name != "tags"},
                tags=dict(request.get("tags") or {}),
            )
        )
        _transition(item, ISSUED, serial=record.serial)
        return {"tenant": item.tenant, "id": item.item_id, "serial": record.serial}

    def record_failure(self, state: dict[str, Any]) -> dict[str, Any]:
        """The lifecycle refused (it already put the failure event): the item says why."""
        item = self._item(state)
        error = state.get("error") or {}
        _transition(item, FAILED, failure={"code": error.get("Error"), "message": _cause(error)})
        return {"tenant": item.tenant, "id": item.item_id, "status": FAILED}

    def record_denial(self, state: dict[str, Any]) -> dict[str, Any]:
        item = self._item(state)
        error = state.get("error") or {}
        timed_out = error.get("Error") == "States.Timeout"
        code = "approval_timed_out" if timed_out else "approval_denied"
        message = "nobody decided in time" if timed_out else (item.reason or "denied")
        _transition(item, FAILED, failure={"code": code, "message": message})
        request = dict(item.request or {})
        self.lifecycle.publisher.publish(
            DetailType.ISSUANCE_FAILED,
            build_detail(
                item.tenant,
                item.decided_by or "certplane-approval",
                failure={"code": code, "message": message, "stage": "request"},
                request={
                    "profile": request.get("profile"),
                    "operation": "issue",
                    "deviceId": request.get("device_id"),
                },
            ),
        )
        return {"tenant": item.tenant, "id": item.item_id, "status": FAILED}


def _cause(error: dict[str, Any]) -> str:
    import json

    cause = error.get("Cause") or ""
    try:
        return str(json.loads(cause).get("errorMessage", cause))[:1000]
    except (ValueError, AttributeError):
        return str(cause)[:1000]


def _transition(
    item: store.WorkflowItem, status: str, expected: str | None = None, **values: Any
) -> None:
    actions = [
        store.WorkflowItem.status.set(status),
        store.WorkflowItem.list_key.set(store.list_key(item.tenant, store.APPROVAL, status)),
        store.WorkflowItem.updated_at.set(store.now()),
    ]
    for name, value in values.items():
        if value is not None:
            actions.append(getattr(store.WorkflowItem, name).set(value))
    try:
        item.update(
            actions=actions,
            condition=(store.WorkflowItem.status == expected) if expected else None,
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise Conflict(
                "already_decided", f"approval {item.item_id} changed meanwhile"
            ) from None
        raise


def from_runtime(runtime: Runtime) -> ApprovalSteps:
    return ApprovalSteps(runtime.lifecycle)


def steps_of(approval: ApprovalSteps) -> dict[str, steps.Step]:
    return {
        "await_decision": approval.await_decision,
        "issue": approval.issue,
        "record_failure": approval.record_failure,
        "record_denial": approval.record_denial,
    }
