"""Issue 8: the fleet simulator's plan and statistics (deterministic, no server)."""

from __future__ import annotations

from collections import Counter

import pytest

from certplane.simulate.fleet import Operation, Protocol, evenly_selected, plan_fleet
from certplane.simulate.results import Acknowledged, Exchange, RunResults, percentile


def test_fractions_select_evenly_spread_devices():
    assert [i for i in range(10) if evenly_selected(i, 0.3)] == [3, 6, 9]
    assert sum(evenly_selected(i, 0.1) for i in range(1000)) == 100
    assert not any(evenly_selected(i, 0.0) for i in range(50))
    assert all(evenly_selected(i, 1.0) for i in range(50))


def test_mixed_fleet_alternates_doors_and_spreads_renewals_and_revocations():
    plans = list(plan_fleet(6, "mixed", 0.5, 0.34, "t"))
    assert [p.protocol for p in plans] == [Protocol.EST, Protocol.CERTIFIER] * 3
    assert [p.name for p in plans][:2] == ["t-000000", "t-000001"]
    renewed = {p.index for p in plans if p.renew}
    revoked = {p.index for p in plans if p.revoke}
    assert renewed == {2, 3} and revoked == {0, 1}  # one of each per door, never the same device
    by_door = Counter((p.protocol, p.renew, p.revoke) for p in plans)
    assert by_door[(Protocol.EST, True, False)] == by_door[(Protocol.CERTIFIER, True, False)] == 1


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError):
        list(plan_fleet(3, "scep", 0, 0, "t"))
    with pytest.raises(ValueError):
        list(plan_fleet(3, "est", 1.5, 0, "t"))


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.5) == 0


def test_summary_counts_per_operation_and_errors():
    results = RunResults()
    results.started_at, results.finished_at = 10.0, 12.0
    results.add(
        Exchange(Operation.ENROLL, Protocol.EST, 0.010),
        Acknowledged("a" * 40, "s", "d0", Protocol.EST, Operation.ENROLL),
    )
    results.add(
        Exchange(Operation.RENEW, Protocol.EST, 0.030),
        Acknowledged("b" * 40, "s", "d0", Protocol.EST, Operation.RENEW),
    )
    results.mark("a" * 40, "SUPERSEDED")
    results.add(Exchange(Operation.ENROLL, Protocol.CERTIFIER, 0.020, "HTTP 503"))
    summary = results.summary()
    assert summary["requests"] == 3 and summary["certificates"] == 2
    assert summary["errors"] == results.errors == 1
    assert summary["errors_by_kind"] == {"HTTP 503": 1}
    assert summary["certs_per_s"] == 1.0  # 2 certificates in 2 s
    assert summary["latency_ms"]["p50"] == 20.0 and summary["latency_ms"]["max"] == 30.0
    assert summary["operations"]["enroll.certifier"] == {
        "requests": 1,
        "errors": 1,
        "latency_ms": {"p50": 20.0, "p90": 20.0, "p99": 20.0, "max": 20.0},
    }
    statuses = {a["certificate_id"][0]: a["expected_status"] for a in results.certificate_list()}
    assert statuses == {"a": "SUPERSEDED", "b": "ISSUED"}
