"""Management API routes of the workflows: approvals, bulk operations, renewal sweeps.

Everything is tenant-scoped by the caller's principal: items are keyed by tenant, a sweep
started here covers the caller's tenant only, and executions are named by tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from certplane.auth import Principal
from certplane.errors import NotFound, RequestRejected
from certplane.lifecycle import IssueRequest
from certplane.model import REVOCATION_REASONS
from certplane.resources import RENEWAL_SWEEP, REVOCATION_WORKFLOW, StateMachineSpec
from certplane.runtime import Runtime
from certplane.workflows.approval import Approvals, approval_view
from certplane.workflows.bulk import BulkOperations, bulk_view
from certplane.workflows.control import WorkflowControl


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionBody(_Body):
    """Approve or deny a pending issuance request."""

    decision: Literal["approve", "deny"]
    reason: str | None = Field(default=None, max_length=500)


class RevocationBody(_Body):
    """Revoke one certificate through the revocation workflow (CRL published at once)."""

    reference: str = Field(min_length=1, max_length=128, description="certificate id or serial")
    reason: str = Field(default="unspecified", min_length=1, max_length=64)


class BulkBody(_Body):
    """Revoke or reissue every live certificate of one CA, one profile or a device list."""

    action: Literal["revoke", "reissue"]
    ca: str | None = Field(default=None, min_length=1, max_length=64)
    profile: str | None = Field(default=None, min_length=1, max_length=64)
    devices: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=1000
    )
    reason: str | None = Field(default=None, max_length=64)


class Workflows:
    """The workflow services of one runtime (built on first use: boto3 is not free)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.control = WorkflowControl()
        self.approvals = Approvals(runtime.lifecycle, self.control)
        self.bulk = BulkOperations(runtime.lifecycle, self.control)

    def requires_approval(self, request: IssueRequest) -> bool:
        profile = self.runtime.settings.tenant_profile(request.tenant, request.profile)
        return profile is not None and profile.requires_approval


def register(
    app: APIGatewayRestResolver, workflows: Workflows, principal: Callable[[], Principal]
) -> None:
    @app.get("/v1/approvals")
    def list_approvals(
        status: Annotated[str, Query(max_length=16)] = "PENDING",
        limit: Annotated[int, Query(ge=1, le=200)] = 100,
    ) -> dict[str, Any]:
        items = workflows.approvals.list(principal().tenant, status, limit)
        return {"items": [approval_view(item) for item in items]}

    @app.get("/v1/approvals/<approval_id>")
    def get_approval(approval_id: str) -> dict[str, Any]:
        return approval_view(workflows.approvals.get(principal().tenant, approval_id))

    @app.post("/v1/approvals/<approval_id>")
    def decide(approval_id: str, body: DecisionBody) -> dict[str, Any]:
        caller = principal()
        item = workflows.approvals.decide(
            caller.tenant, approval_id, body.decision, caller.name, body.reason
        )
        return approval_view(item)

    @app.post("/v1/bulk")
    def start_bulk(body: BulkBody) -> tuple[dict[str, Any], int]:
        caller = principal()
        item = workflows.bulk.start(
            caller.tenant,
            caller.name,
            body.action,
            {"ca": body.ca, "profile": body.profile, "devices": body.devices},
            body.reason,
        )
        return bulk_view(item), 202

    @app.get("/v1/bulk")
    def list_bulk() -> dict[str, Any]:
        return {"items": [bulk_view(item) for item in workflows.bulk.list(principal().tenant)]}

    @app.get("/v1/bulk/<operation_id>")
    def get_bulk(operation_id: str) -> dict[str, Any]:
        return bulk_view(workflows.bulk.get(principal().tenant, operation_id))

    @app.post("/v1/revocations")
    def start_revocation(body: RevocationBody) -> tuple[dict[str, Any], int]:
        """Revoke and regenerate the CRL now (the revocation workflow), not at the next minute."""
        caller = principal()
        if body.reason not in REVOCATION_REASONS:
            raise RequestRejected("invalid_reason", f"unknown revocation reason {body.reason!r}")
        record = workflows.runtime.lifecycle.get(caller.tenant, body.reference)  # 404 early
        name = f"revocation-{caller.tenant}-{uuid.uuid4().hex[:12]}"
        payload = {
            "tenant": caller.tenant,
            "reference": record.serial,
            "reason": body.reason,
            "requester": caller.name,
        }
        workflows.control.start(REVOCATION_WORKFLOW, name, payload)
        return {"name": name, "status": "RUNNING", "serial": record.serial}, 202

    @app.get("/v1/revocations/<name>")
    def get_revocation(name: str) -> dict[str, Any]:
        return _execution(REVOCATION_WORKFLOW, "revocation", name)

    def _execution(spec: StateMachineSpec, kind: str, name: str) -> dict[str, Any]:
        if not name.startswith(f"{kind}-{principal().tenant}-") or len(name) > 80:
            raise NotFound(f"{kind}_not_found", f"no {kind} {name} in this tenant")
        try:
            return workflows.control.describe(spec, name)
        except workflows.control.client.exceptions.ExecutionDoesNotExist:
            raise NotFound(f"{kind}_not_found", f"no {kind} {name} in this tenant") from None

    @app.post("/v1/sweeps")
    def start_sweep() -> tuple[dict[str, Any], int]:
        tenant = principal().tenant
        name = f"sweep-{tenant}-{uuid.uuid4().hex[:12]}"
        workflows.control.start(RENEWAL_SWEEP, name, {"tenants": [tenant]})
        return {"name": name, "status": "RUNNING"}, 202

    @app.get("/v1/sweeps/<name>")
    def get_sweep(name: str) -> dict[str, Any]:
        return _execution(RENEWAL_SWEEP, "sweep", name)
