"""What the status layer remembers between runs: CRL numbers and which CRLs are due.

One small DynamoDB table; every key leads with the CA (CRLs belong to an issuer, not to a
tenant). Revocation bumps a shard's `revision`; publishing records the revision it covered,
so a revocation racing a publish is never lost (it stays due) and bursts coalesce (debounce).
"""

from __future__ import annotations

import datetime
import os

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

STATUS_TABLE_ENV = "CERTPLANE_STATUS_TABLE"
STATUS_TABLE_DEFAULT = "certplane-status"
FULL = "full"


class StatusState(Model):
    """`<ca>#crl-number` (the CA's CRL number counter) or `<ca>#crl#<shard|full>` (one CRL)."""

    class Meta:
        table_name = os.environ.get(STATUS_TABLE_ENV, STATUS_TABLE_DEFAULT)
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    ca_id = UnicodeAttribute()
    revision = NumberAttribute(default=0)
    published_revision = NumberAttribute(default=0)
    crl_number = NumberAttribute(null=True)
    this_update = UTCDateTimeAttribute(null=True)
    next_update = UTCDateTimeAttribute(null=True)
    entries = NumberAttribute(null=True)
    size_bytes = NumberAttribute(null=True)


def crl_state_key(ca_id: str, shard: int | str) -> str:
    return f"{ca_id}#crl#{shard}"


def counter_key(ca_id: str) -> str:
    return f"{ca_id}#crl-number"


def mark_dirty(ca_id: str, shard: int) -> None:
    """A certificate of this shard was revoked: the shard and the full CRL are due."""
    for key in (crl_state_key(ca_id, shard), crl_state_key(ca_id, FULL)):
        StatusState(key).update(actions=[StatusState.ca_id.set(ca_id), StatusState.revision.add(1)])


def next_crl_number(ca_id: str) -> int:
    """Atomically take the CA's next CRL number (monotonic across shards and the full CRL)."""
    item = StatusState(counter_key(ca_id))
    item.update(actions=[StatusState.ca_id.set(ca_id), StatusState.crl_number.add(1)])
    return int(item.crl_number)


def load_states(ca_id: str, names: list[int | str]) -> dict[int | str, StatusState]:
    """The state of each named CRL (a fresh, unsaved one where none was stored)."""
    keys = {crl_state_key(ca_id, name): name for name in names}
    found = {item.pk: item for item in StatusState.batch_get(list(keys))}
    return {
        name: found.get(key) or StatusState(key, ca_id=ca_id, revision=0, published_revision=0)
        for key, name in keys.items()
    }


def record_published(
    state: StatusState,
    covered_revision: int,
    number: int,
    this_update: datetime.datetime,
    next_update: datetime.datetime,
    entries: int,
    size_bytes: int,
) -> None:
    """Store what was published; `revision` is left alone (revocations since stay due)."""
    state.update(
        actions=[
            StatusState.ca_id.set(state.ca_id),
            StatusState.published_revision.set(covered_revision),
            StatusState.crl_number.set(number),
            StatusState.this_update.set(this_update),
            StatusState.next_update.set(next_update),
            StatusState.entries.set(entries),
            StatusState.size_bytes.set(size_bytes),
        ]
    )
