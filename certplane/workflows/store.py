"""What the workflows remember: approvals, bulk-operation progress and expiry notices.

One DynamoDB table; every key starts with the tenant. A sparse index lists a tenant's items of
one kind and status (pending approvals, bulk operations) newest first, never by a scan.
"""

from __future__ import annotations

import datetime
import os

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

WORKFLOWS_TABLE_ENV = "CERTPLANE_WORKFLOWS_TABLE"
WORKFLOWS_TABLE_DEFAULT = "certplane-workflows"
APPROVAL = "approval"
BULK = "bulk"
NOTICE = "notice"


class ByList(GlobalSecondaryIndex["WorkflowItem"]):
    """`<tenant>#<kind>[#<status>]` → items, newest first (sparse: notices are not listed)."""

    class Meta:
        index_name = "by-list"
        projection = AllProjection()

    list_key = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class WorkflowItem(Model):
    """An approval request, a bulk operation's progress, or an expiry-notice marker."""

    class Meta:
        table_name = os.environ.get(WORKFLOWS_TABLE_ENV, WORKFLOWS_TABLE_DEFAULT)
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    tenant = UnicodeAttribute()
    kind = UnicodeAttribute()
    item_id = UnicodeAttribute()
    status = UnicodeAttribute(null=True)
    list_key = UnicodeAttribute(null=True)
    created_key = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute(null=True)
    requester = UnicodeAttribute(null=True)
    # approval: the issuance request, the task token the state machine waits with, the outcome
    request = JSONAttribute(null=True)
    task_token = UnicodeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    serial = UnicodeAttribute(null=True)
    failure = JSONAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    # bulk: counters updated atomically per certificate
    total = NumberAttribute(default=0)
    done = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    selection_complete = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    expire_at = NumberAttribute(null=True)

    by_list = ByList()


def item_key(tenant: str, kind: str, item_id: str) -> str:
    return f"{tenant}#{kind}#{item_id}"


def list_key(tenant: str, kind: str, status: str | None = None) -> str:
    return f"{tenant}#{kind}" + (f"#{status}" if status else "")


def created_key(moment: datetime.datetime, item_id: str) -> str:
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{item_id}"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
