"""Which events reach a connector: one EventBridge rule per configured connector.

The pattern is built from the event contract alone (source, detail-type, detail.tenant and
optional detail filters), so the CDK stack and `certplane dev` create the same rule from the
same configuration. `ConnectorRoute` has the fields of `certplane.resources.RuleSpec`
(name, pattern, queue_name) plus its dead-letter queue; it is not that class because
connectors depend on the event schema only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certplane.events import SOURCE, DetailType

NAME_PREFIX = "certplane-connector-"
# Receives before SQS moves a message to the DLQ: with the batch layer's backoff
# (connectors.batch) this spans several hours of target outage.
DEFAULT_MAX_RECEIVE_COUNT = 12
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


@dataclass(frozen=True)
class ConnectorRoute:
    """Rule → queue (→ DLQ after `max_receive_count` receives) for one connector."""

    name: str
    pattern: dict[str, Any]
    queue_name: str
    dlq_name: str
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT


def event_pattern(
    tenant: str,
    events: Sequence[str],
    filters: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """EventBridge pattern: certplane source, these detail-types, this tenant, and filters.

    A filter key is a dotted path inside `detail` (e.g. `certificate.profile`,
    `revocation.reason`); its value lists the accepted values (any EventBridge matcher, such
    as {"prefix": "..."}, is passed through).
    """
    if not events:
        raise ValueError("a connector route needs at least one detail-type")
    detail_types = [DetailType(name).value for name in events]
    detail: dict[str, Any] = {"tenant": [tenant]}
    for path, accepted in (filters or {}).items():
        *parents, leaf = path.split(".")
        if not leaf or any(not part for part in parents) or (leaf == "tenant" and not parents):
            raise ValueError(f"bad filter path {path!r}")
        node = detail
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"filter path {path!r} clashes with another filter")
        node[leaf] = list(accepted)
    return {"source": [SOURCE], "detail-type": detail_types, "detail": detail}


def connector_route(
    name: str,
    tenant: str,
    events: Sequence[str],
    filters: Mapping[str, Sequence[Any]] | None = None,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
) -> ConnectorRoute:
    """The rule and queues of connector `name` (lower-case, digits, dashes; ≤ 41 chars so
    every derived name stays inside EventBridge's and SQS's limits)."""
    if not _NAME.match(name):
        raise ValueError(f"connector name {name!r} must match {_NAME.pattern}")
    base = NAME_PREFIX + name
    return ConnectorRoute(
        name=base,
        pattern=event_pattern(tenant, events, filters),
        queue_name=base,
        dlq_name=base + "-dlq",
        max_receive_count=max_receive_count,
    )
