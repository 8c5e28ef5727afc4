"""Routes a signing request along a profile's route: algorithm selection, health, failover.

A profile names an ordered route and, optionally, the signature algorithm it wants; only the
route's engines whose capabilities sign with that algorithm are eligible, so moving a profile
from ECDSA to ML-DSA re-routes without any client change. Engines that failed recently are
tried after healthy ones. Transient errors fail over; permanent ones (the request is wrong for
the route) do not, because trying the next engine would hide them.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from certbridge.interface import (
    CAEngine,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.lint import lint_signing_request

logger = logging.getLogger(__name__)

# While an engine keeps failing, its "unavailable" notice is repeated at most this often.
NOTIFY_INTERVAL = datetime.timedelta(minutes=5)

OnUnavailable = Callable[[str, TransientEngineError], None]


@dataclass
class EngineHealth:
    """What this process has seen of one engine."""

    consecutive_failures: int = 0
    last_error: str | None = None
    last_failure_at: datetime.datetime | None = None
    last_notified_at: datetime.datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class EngineRouter:
    """Holds the registered engines by id and tries a route's eligible engines in order."""

    def __init__(
        self,
        engines: Mapping[str, CAEngine],
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self._engines = dict(engines)
        self._health = {engine_id: EngineHealth() for engine_id in self._engines}
        self._lock = threading.Lock()
        self._clock = clock

    def engine(self, engine_id: str) -> CAEngine:
        try:
            return self._engines[engine_id]
        except KeyError:
            raise PermanentEngineError(f"no CA engine is registered as {engine_id!r}") from None

    @property
    def engine_ids(self) -> tuple[str, ...]:
        return tuple(self._engines)

    def health(self) -> dict[str, EngineHealth]:
        with self._lock:
            return {engine_id: EngineHealth(**vars(h)) for engine_id, h in self._health.items()}

    def eligible(
        self,
        route: Sequence[str],
        signature_algorithm: str | None = None,
        on_unavailable: OnUnavailable | None = None,
    ) -> list[str]:
        """The route's engines that sign with `signature_algorithm`, healthy ones first.

        An engine that cannot even report its capabilities counts as unavailable and is left
        out; one that signs with another algorithm is left out silently.
        """
        if not route:
            raise PermanentEngineError("the route names no CA engine")
        matching: list[str] = []
        for engine_id in route:
            engine = self.engine(engine_id)
            try:
                algorithm = engine.capabilities().signing_algorithm
            except TransientEngineError as error:
                if self._failed(engine_id, error) and on_unavailable is not None:
                    on_unavailable(engine_id, error)
                continue
            if signature_algorithm is None or algorithm == signature_algorithm:
                matching.append(engine_id)
        with self._lock:
            matching.sort(key=lambda engine_id: not self._health[engine_id].healthy)
        return matching

    def issue(
        self,
        route: Sequence[str],
        request: SigningRequest,
        signature_algorithm: str | None = None,
        on_unavailable: OnUnavailable | None = None,
        prepare: Callable[[str, SigningRequest], SigningRequest] | None = None,
    ) -> tuple[str, IssuedCertificate]:
        """Sign through the first eligible engine that answers; returns (engine id, result).

        `on_unavailable` hears of an engine's failure when it turns unavailable (and again
        every NOTIFY_INTERVAL while it stays so), not on every failed request. `prepare`
        completes the request for the engine about to sign it (status URLs name the issuing
        CA, which failover decides only here).
        """
        candidates = self.eligible(route, signature_algorithm, on_unavailable)
        if not candidates:
            wanted = f" signing with {signature_algorithm}" if signature_algorithm else ""
            raise TransientEngineError(f"no engine of route {list(route)}{wanted} is available")
        last_error: TransientEngineError | None = None
        for engine_id in candidates:
            engine = self.engine(engine_id)
            engine_request = prepare(engine_id, request) if prepare else request
            try:
                lint_signing_request(engine_request, engine.capabilities())
                issued = engine.issue(engine_request)
            except TransientEngineError as error:
                logger.warning("engine %s unavailable, failing over: %s", engine_id, error)
                last_error = error
                if self._failed(engine_id, error) and on_unavailable is not None:
                    on_unavailable(engine_id, error)
                continue
            with self._lock:
                self._health[engine_id].consecutive_failures = 0
            return engine_id, issued
        raise TransientEngineError(f"every engine of route {list(route)} failed: {last_error}")

    def _failed(self, engine_id: str, error: Exception) -> bool:
        """Record a failure; True when listeners should hear of it now."""
        now = self._clock()
        with self._lock:
            health = self._health[engine_id]
            health.consecutive_failures += 1
            health.last_error = str(error)
            health.last_failure_at = now
            due = (
                health.last_notified_at is None or now - health.last_notified_at >= NOTIFY_INTERVAL
            )
            if health.consecutive_failures == 1 or due:
                health.last_notified_at = now
                return True
            return False
