"""Issue 8: the cost model's arithmetic on a synthetic work profile, and how recorded AWS calls
become billed units. No measurement, no time: only sums a person can redo by hand."""

from __future__ import annotations

import pytest

from bench.cost import (
    PRICES,
    CallRecorder,
    WorkProfile,
    attribute_bytes,
    cost_breakdown,
    engine_profile,
    item_bytes,
    pca_general_purpose_price,
)

SYNTHETIC = WorkProfile(
    api_requests=1,
    lambda_invocations=1,
    lambda_ms=100,
    lambda_memory_mb=1024,
    dynamodb_wru=10,
    dynamodb_rru=2,
    eventbridge_events=1,
)


def test_kms_breakdown_by_hand():
    profile = engine_profile(SYNTHETIC, "kms")
    assert profile.kms_signs == 1 and profile.lambda_ms == 110  # + the assumed Sign latency
    parts = cost_breakdown(profile, "kms", monthly=1_000_000)
    assert parts["api_gateway"] == pytest.approx(3.50)
    assert parts["lambda_requests"] == pytest.approx(0.20)
    # 0.110 s * 1 GB * $0.0000133334 * 1e6
    assert parts["lambda_compute"] == pytest.approx(0.110 * 13.3334, abs=1e-3)
    assert parts["dynamodb_writes"] == pytest.approx(10 * 0.625)
    assert parts["dynamodb_reads"] == pytest.approx(2 * 0.125)
    assert parts["eventbridge"] == pytest.approx(1.00)
    assert parts["kms_signs"] == pytest.approx(15.00)  # $0.15 per 10,000
    assert parts["ca_fixed"] == pytest.approx(1.00)  # one $1 key over a million a month
    assert parts["ca_certificates"] == 0


def test_private_ca_tiers_and_modes():
    # 1,000 * 0.75 + 9,000 * 0.35 + 10,000 * 0.001 over 20,000 certificates
    assert pca_general_purpose_price(20_000) == pytest.approx((750 + 3150 + 10) / 20_000)
    assert pca_general_purpose_price(500) == pytest.approx(0.75)
    general = cost_breakdown(
        engine_profile(SYNTHETIC, "pca_general_purpose"), "pca_general_purpose", 20_000
    )
    assert general["ca_certificates"] == pytest.approx((750 + 3150 + 10) / 20_000 * 1e6, rel=1e-6)
    assert general["ca_fixed"] == pytest.approx(400 / 20_000 * 1e6)
    assert general["kms_signs"] == 0
    short = cost_breakdown(engine_profile(SYNTHETIC, "pca_short_lived"), "pca_short_lived", 20_000)
    assert short["ca_certificates"] == pytest.approx(
        PRICES["pca_short_lived_usd_per_certificate"] * 1e6
    )
    assert short["ca_fixed"] == pytest.approx(50 / 20_000 * 1e6)
    with pytest.raises(ValueError):
        engine_profile(SYNTHETIC, "hsm")


def test_item_sizes_follow_dynamodb_rules():
    assert attribute_bytes({"S": "héllo"}) == 6  # UTF-8 bytes
    assert attribute_bytes({"B": b"\x00" * 10}) == 10
    assert attribute_bytes({"BOOL": True}) == 1
    assert attribute_bytes({"N": "12345"}) == 4  # (5 digits + 1) // 2 + 1
    assert item_bytes({"pk": {"S": "a" * 100}, "n": {"L": [{"S": "x"}]}}) == 2 + 100 + 1 + 3 + 2


def test_recorder_turns_calls_into_units():
    big = {"pk": {"S": "t#1"}, "pem": {"S": "x" * 3000}, "tenant": {"S": "t"}, "gsi": {"S": "k"}}
    recorder = CallRecorder(
        {"inv": [("tenant", None, "ALL"), ("gsi", None, "KEYS_ONLY"), ("nope", None, "ALL")]}
    )
    recorder.record("dynamodb", "PutItem", {"TableName": "inv", "Item": big}, {})
    # base 3 KB → 3 WRU; ALL index → 3 WRU; KEYS_ONLY index → 1 WRU; absent key → nothing
    assert recorder.tally.wru == 7
    recorder.record(
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"TableName": "other", "Item": {"pk": {"S": "a"}}}}]},
        {},
    )
    assert recorder.tally.wru == 9  # transactional writes cost double
    recorder.record("dynamodb", "GetItem", {"TableName": "inv", "Key": {}}, {"Item": big})
    assert recorder.tally.rru == 0.5  # eventually consistent, under 4 KB
    recorder.record("dynamodb", "Query", {"TableName": "inv"}, {"Items": []})
    assert recorder.tally.rru == 1.0  # an empty Query still costs the minimum
    recorder.record("events", "PutEvents", {"Entries": [{}, {}]}, {})
    assert recorder.tally.events == 2
    assert recorder.tally.calls == {
        "dynamodb.PutItem": 1,
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.GetItem": 1,
        "dynamodb.Query": 1,
        "events.PutEvents": 1,
    }
