"""The integrations layer's backbone: the certplane bus, its archive and the evidence store."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_events as events
from constructs import Construct

from cdk.event_bus import CertplaneEventBus
from cdk.evidence_store import EvidenceStore
from certplane.resources import EVENT_BUS


class EventsStack(Stack):
    """Owns the bus so producers and connector stacks can come and go around it."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.event_bus = CertplaneEventBus(self, EVENT_BUS.logical_id, spec=EVENT_BUS)
        self.evidence = EvidenceStore(self, "Evidence", bus=self.bus, source=EVENT_BUS.source)

    @property
    def bus(self) -> events.IEventBus:
        return self.event_bus.bus
