"""What a run produced: every exchange, every acknowledged certificate, and the summary.

Percentiles are nearest-rank over all exchanges of a kind (no interpolation: p99 is a latency
some request really had). Certificates per second count only certificates that passed the
device's checks, over the wall time from the first request sent to the last answer.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from certplane.simulate.fleet import Operation, Protocol


@dataclass(frozen=True)
class Exchange:
    """One request of one device: what it was, how long it took, and whether it failed."""

    operation: Operation
    protocol: Protocol
    seconds: float
    error: str | None = None  # the error kind (`HTTP 500`, `certificate`…), None when fine


@dataclass
class Acknowledged:
    """A certificate the server handed out and the device accepted, with the status the
    inventory must show for it after the run."""

    certificate_id: str
    sha256: str
    device: str
    protocol: Protocol
    operation: Operation
    expected_status: str = "ISSUED"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _latency_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        name: round(percentile(ordered, fraction) * 1000, 1)
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }


@dataclass
class RunResults:
    """Collected from the worker threads (appends under one lock)."""

    exchanges: list[Exchange] = field(default_factory=list)
    acknowledged: dict[str, Acknowledged] = field(default_factory=dict)
    devices_started: int = 0
    devices_finished: int = 0
    errors: int = 0  # failed exchanges so far (for progress display without a scan)
    started_at: float = 0.0
    finished_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, exchange: Exchange, certificate: Acknowledged | None = None) -> None:
        with self._lock:
            self.exchanges.append(exchange)
            self.errors += exchange.error is not None
            if certificate is not None:
                self.acknowledged[certificate.certificate_id] = certificate

    def device_finished(self) -> None:
        with self._lock:
            self.devices_finished += 1

    def mark(self, certificate_id: str, status: str) -> None:
        """The status an acknowledged certificate must have now (renewed, revoked)."""
        with self._lock:
            self.acknowledged[certificate_id].expected_status = status

    @property
    def elapsed(self) -> float:
        return max(self.finished_at - self.started_at, 1e-9)

    def summary(self) -> dict[str, Any]:
        """The numbers of the run, as `--json` prints them (without the certificate list)."""
        with self._lock:
            exchanges = list(self.exchanges)
            certificates = len(self.acknowledged)
        errors = Counter(e.error for e in exchanges if e.error)
        operations: dict[str, Any] = {}
        for operation in Operation:
            for protocol in Protocol:
                mine = [e for e in exchanges if e.operation == operation and e.protocol == protocol]
                if not mine:
                    continue
                operations[f"{operation}.{protocol}"] = {
                    "requests": len(mine),
                    "errors": sum(1 for e in mine if e.error),
                    "latency_ms": _latency_ms([e.seconds for e in mine]),
                }
        return {
            "devices": self.devices_finished,
            "requests": len(exchanges),
            "certificates": certificates,
            "errors": sum(errors.values()),
            "errors_by_kind": dict(sorted(errors.items())),
            "duration_s": round(self.elapsed, 3),
            "certs_per_s": round(certificates / self.elapsed, 1),
            "requests_per_s": round(len(exchanges) / self.elapsed, 1),
            "latency_ms": _latency_ms([e.seconds for e in exchanges]),
            "operations": operations,
        }

    def certificate_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(a) for a in self.acknowledged.values()]
