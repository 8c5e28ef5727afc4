"""The revocation workflow: revoke through the lifecycle, then publish the certificate's CRL.

The scheduled publisher would pick the shard up within a minute anyway; the workflow makes
the CRL follow at once and proves it did: `publish_crl` raises `CrlNotPublished` (which the
state machine retries) until the shard's published revision covers the revocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certbridge.interface import crl_signer
from certplane.lifecycle import Lifecycle
from certplane.runtime import Runtime
from certplane.status import state as crl_state
from certplane.status.crl import CrlPublisher
from certplane.status.service import build_status
from certplane.status.urls import crl_shard
from certplane.workflows import steps

_PUBLISHERS: dict[int, CrlPublisher] = {}


class CrlNotPublished(Exception):
    """The revoked certificate's CRL shard is still due (retried by the state machine)."""


@dataclass
class RevocationSteps:
    lifecycle: Lifecycle
    publisher: CrlPublisher

    def revoke(self, state: dict[str, Any]) -> dict[str, Any]:
        record = self.lifecycle.revoke(
            state["tenant"],
            state["reference"],
            state.get("reason", "unspecified"),
            state.get("requester", "certplane-revocation"),
        )
        return {
            "tenant": record.tenant,
            "serial": record.serial,
            "ca": record.ca_id,
            "reason": record.revocation_reason,
        }

    def publish_crl(self, state: dict[str, Any]) -> dict[str, Any]:
        ca_id = state["ca"]
        if crl_signer(self.lifecycle.router.engine(ca_id)) is None:
            return {**state, "crl": None}  # this CA publishes its own status (or none)
        settings = self.lifecycle.settings
        shard = crl_shard(int(state["serial"], 16), settings.crl_shards(ca_id))
        self.publisher.publish_ca(ca_id)
        item = crl_state.load_states(ca_id, [shard])[shard]
        if int(item.published_revision or 0) < int(item.revision or 0):
            raise CrlNotPublished(f"CRL shard {shard} of {ca_id} is still due")
        return {**state, "crl": {"shard": shard, "number": int(item.crl_number or 0)}}


def from_runtime(runtime: Runtime) -> RevocationSteps:
    if id(runtime) not in _PUBLISHERS:
        _PUBLISHERS[id(runtime)] = build_status(runtime).crl
    return RevocationSteps(runtime.lifecycle, _PUBLISHERS[id(runtime)])


def steps_of(revocation: RevocationSteps) -> dict[str, steps.Step]:
    return {"revoke": revocation.revoke, "publish_crl": revocation.publish_crl}
