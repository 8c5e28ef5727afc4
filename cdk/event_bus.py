"""The certplane EventBridge bus, named from `EVENT_BUS`, with an archive of everything on it."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from certplane.resources import BusSpec

ARCHIVE_RETENTION = Duration.days(365)


class CertplaneEventBus(Construct):
    """The bus connectors subscribe to, plus an archive of every certplane event.

    The archive is the AWS counterpart of the dev server's event tap: it keeps what connectors
    would have received, and lets a new or repaired connector be replayed from it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: BusSpec,
        archive_retention: Duration = ARCHIVE_RETENTION,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        # Named, not generated: connectors and other accounts address the bus by this name.
        self.bus = events.EventBus(self, "Bus", event_bus_name=spec.default_name)
        self.archive = self.bus.archive(
            "Archive",
            event_pattern=events.EventPattern(source=[spec.source]),
            retention=archive_retention,
            description=f"Every event with source {spec.source!r}, for audit and replay",
        )
