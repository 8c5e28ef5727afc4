"""cost_per_million_usd: what a million certificates cost on AWS, per CA engine, from the work
one certificate measurably causes and AWS's published on-demand prices.

Work is measured in process: the real EST and Certifier Lambda handlers are invoked with API
Gateway proxy events on an embedded AWS (moto) provisioned like `certplane dev`, and every AWS
call they make is recorded with its parameters and response. From that come DynamoDB read and
write request units (item sizes → RRU/WRU, on-demand rules), EventBridge events, API Gateway
requests and Lambda invocations. Lambda time is the handler's own measured time (wall time
minus the time spent inside moto) plus an ASSUMED in-Region latency per AWS call (moto answers
in-process, so its timings say nothing about AWS). The engines differ only in what signs:
local signing stands in for KMS (plus one kms:Sign and its latency per certificate) and for
AWS Private CA (plus its per-certificate price and one issuance wait).

Prices are a dated table with sources; they are not fetched at run time. Fixed monthly fees
(CA, KMS key) are spread over `MONTHLY_CERTIFICATES`.
"""

from __future__ import annotations

import base64
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

PRICES: dict[str, Any] = {
    "as_of": "2026-12-04",
    "region": "us-east-1",
    "status": "as known on 2026-12-04 from the AWS pricing pages below; verify before relying",
    "sources": {
        "lambda": "https://aws.amazon.com/lambda/pricing/",
        "api_gateway": "https://aws.amazon.com/api-gateway/pricing/",
        "dynamodb": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "eventbridge": "https://aws.amazon.com/eventbridge/pricing/",
        "kms": "https://aws.amazon.com/kms/pricing/",
        "private_ca": "https://aws.amazon.com/private-ca/pricing/",
    },
    # Lambda, Arm (Graviton): first 6 billion GB-seconds a month; requests.
    "lambda_arm64_usd_per_gb_second": 0.0000133334,
    "lambda_usd_per_request": 0.20 / 1e6,
    # API Gateway REST APIs: first 333 million requests a month.
    "api_gateway_rest_usd_per_request": 3.50 / 1e6,
    # DynamoDB on-demand (Standard table class).
    "dynamodb_usd_per_write_request_unit": 0.625 / 1e6,
    "dynamodb_usd_per_read_request_unit": 0.125 / 1e6,
    # EventBridge custom events, per 64 KB chunk.
    "eventbridge_usd_per_event": 1.00 / 1e6,
    # KMS: asymmetric requests other than RSA 2048 (ECC P-256 Sign); key storage.
    "kms_usd_per_asymmetric_request": 0.15 / 1e4,
    "kms_usd_per_key_month": 1.00,
    # AWS Private CA: CA operation per month, and certificates issued in a month.
    "pca_general_purpose_usd_per_ca_month": 400.0,
    "pca_short_lived_usd_per_ca_month": 50.0,
    "pca_general_purpose_usd_per_certificate_tiers": [[1000, 0.75], [10000, 0.35], [None, 0.001]],
    "pca_short_lived_usd_per_certificate": 0.058,
}
ENGINES = ("kms", "pca_general_purpose", "pca_short_lived")
MONTHLY_CERTIFICATES = 30_000_000  # the reference's steady state: 1M a day
LAMBDA_MEMORY_MB = 512  # cdk/handler_function.py's default
# Assumed in-Region latencies of the calls a handler waits for (moto cannot tell).
ASSUMED_CALL_MS = {"dynamodb": 5.0, "events": 10.0, "kms": 10.0}
ASSUMED_PCA_ISSUE_MS = 1000.0  # IssueCertificate, then GetCertificate polled every second


@dataclass(frozen=True)
class WorkProfile:
    """What one certificate costs in units AWS bills."""

    api_requests: float = 1.0
    lambda_invocations: float = 1.0
    lambda_ms: float = 0.0
    lambda_memory_mb: int = LAMBDA_MEMORY_MB
    dynamodb_wru: float = 0.0
    dynamodb_rru: float = 0.0
    eventbridge_events: float = 0.0
    kms_signs: float = 0.0
    pca_certificates: float = 0.0


def pca_general_purpose_price(monthly: int, prices: dict[str, Any] = PRICES) -> float:
    """Average price of one certificate when `monthly` are issued in a month (tiered)."""
    total, below = 0.0, 0
    for ceiling, price in prices["pca_general_purpose_usd_per_certificate_tiers"]:
        upto = monthly if ceiling is None else min(monthly, ceiling)
        if upto > below:
            total += (upto - below) * price
            below = upto
    return total / monthly


def engine_profile(base: WorkProfile, engine: str) -> WorkProfile:
    """The measured (local-signing) profile with the engine's own signing work added."""
    if engine == "kms":
        return replace(base, kms_signs=1.0, lambda_ms=base.lambda_ms + ASSUMED_CALL_MS["kms"])
    if engine in ("pca_general_purpose", "pca_short_lived"):
        return replace(base, pca_certificates=1.0, lambda_ms=base.lambda_ms + ASSUMED_PCA_ISSUE_MS)
    raise ValueError(f"unknown engine {engine!r}")


def cost_breakdown(
    profile: WorkProfile,
    engine: str,
    monthly: int = MONTHLY_CERTIFICATES,
    prices: dict[str, Any] = PRICES,
) -> dict[str, float]:
    """USD per million certificates, by component (the profile already includes the engine)."""
    million = 1e6
    gb_seconds = profile.lambda_ms / 1000 * profile.lambda_memory_mb / 1024
    parts = {
        "api_gateway": profile.api_requests * prices["api_gateway_rest_usd_per_request"],
        "lambda_requests": profile.lambda_invocations * prices["lambda_usd_per_request"],
        "lambda_compute": gb_seconds * prices["lambda_arm64_usd_per_gb_second"],
        "dynamodb_writes": profile.dynamodb_wru * prices["dynamodb_usd_per_write_request_unit"],
        "dynamodb_reads": profile.dynamodb_rru * prices["dynamodb_usd_per_read_request_unit"],
        "eventbridge": profile.eventbridge_events * prices["eventbridge_usd_per_event"],
        "kms_signs": profile.kms_signs * prices["kms_usd_per_asymmetric_request"],
        "ca_certificates": 0.0,
        "ca_fixed": 0.0,
    }
    if engine == "kms":
        parts["ca_fixed"] = prices["kms_usd_per_key_month"] / monthly
    elif engine == "pca_general_purpose":
        parts["ca_certificates"] = profile.pca_certificates * pca_general_purpose_price(
            monthly, prices
        )
        parts["ca_fixed"] = prices["pca_general_purpose_usd_per_ca_month"] / monthly
    elif engine == "pca_short_lived":
        parts["ca_certificates"] = (
            profile.pca_certificates * prices["pca_short_lived_usd_per_certificate"]
        )
        parts["ca_fixed"] = prices["pca_short_lived_usd_per_ca_month"] / monthly
    else:
        raise ValueError(f"unknown engine {engine!r}")
    return {name: round(value * million, 4) for name, value in parts.items()}


# -- DynamoDB request units from items ---------------------------------------------------


def attribute_bytes(value: dict[str, Any]) -> int:
    """DynamoDB's size of one typed attribute value (the documented rules, approximately)."""
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return (len(str(data).lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(attribute_bytes({"N": n}) for n in data)
    if kind == "BS":
        return sum(attribute_bytes({"B": b}) for b in data)
    if kind == "L":
        return 3 + sum(1 + attribute_bytes(v) for v in data)
    if kind == "M":
        return 3 + item_bytes(data)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_bytes(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


@dataclass
class Tally:
    """DynamoDB units, EventBridge events and AWS time, accumulated over recorded calls."""

    wru: float = 0.0
    rru: float = 0.0
    events: int = 0
    aws_seconds: float = 0.0
    assumed_ms: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)


class CallRecorder:
    """Counts what each AWS call bills. `indexes` maps a table name to its GSIs as
    (partition key, sort key or None, projection)."""

    def __init__(self, indexes: dict[str, list[tuple[str, str | None, str]]]) -> None:
        self.indexes = indexes
        self.tally = Tally()

    def _index_writes(self, table: str, item: dict[str, Any], size: int) -> int:
        units = 0
        for partition, sort, projection in self.indexes.get(table, []):
            if partition in item and (sort is None or sort in item):
                units += write_units(size) if projection == "ALL" else 1
        return units

    def _put(self, table: str, item: dict[str, Any], factor: int = 1) -> None:
        size = item_bytes(item)
        self.tally.wru += factor * write_units(size) + self._index_writes(table, item, size)

    def record(self, service: str, operation: str, params: dict, response: dict) -> None:
        tally = self.tally
        tally.calls[f"{service}.{operation}"] = tally.calls.get(f"{service}.{operation}", 0) + 1
        tally.assumed_ms += ASSUMED_CALL_MS.get(service, 0.0)
        if service == "events" and operation == "PutEvents":
            tally.events += len(params.get("Entries", []))
        if service != "dynamodb":
            return
        if operation == "PutItem":
            self._put(params["TableName"], params["Item"])
        elif operation in ("UpdateItem", "DeleteItem"):
            attributes = response.get("Attributes") or params.get("Key", {})
            self._put(params["TableName"], attributes)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    self._put(table, (request.get("PutRequest") or {}).get("Item", {}))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (_kind, body), *_ = entry.items()
                self._put(body["TableName"], body.get("Item") or body.get("Key", {}), factor=2)
        elif operation == "GetItem":
            consistent = bool(params.get("ConsistentRead"))
            tally.rru += read_units(item_bytes(response.get("Item") or {}), consistent)
        elif operation == "Query":
            size = sum(item_bytes(item) for item in response.get("Items", []))
            tally.rru += read_units(size, bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for items in (response.get("Responses") or {}).values():
                tally.rru += sum(read_units(item_bytes(item)) for item in items)


@contextmanager
def recording(recorder: CallRecorder) -> Iterator[None]:
    """Every botocore call in this process goes through the recorder while the block runs."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def recorded(self: BaseClient, operation: str, params: dict) -> dict:
        start = time.perf_counter()
        response = original(self, operation, params)
        recorder.tally.aws_seconds += time.perf_counter() - start
        recorder.record(self.meta.service_model.endpoint_prefix, operation, params, response)
        return response

    BaseClient._make_api_call = recorded  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


# -- measuring work on an embedded AWS ---------------------------------------------------


@contextmanager
def _restored_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def measure_work(samples: int = 20) -> dict[str, WorkProfile]:
    """Per door (Certifier X509 seed, EST Basic): the median work of one enrollment."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from certplane.dev.aws import ACCOUNT_ID, REGION, EmbeddedAws
    from certplane.dev.bootstrap import prepare_bootstrap
    from certplane.dev.front import proxy_event, route
    from certplane.dev.lambda_host import LambdaHost
    from certplane.resources import CA_DIR_ENV, TABLES
    from certplane.runtime import build_runtime
    from certplane.simulate.target import Seed
    from certplane.simulate.wire import (
        certificate_request,
        headers,
        libcertifier_csr,
        pretty_json,
        x509_token,
    )
    from certplane.status.ocsp_signer import OCSP_DIR_ENV
    from certplane.status.urls import STATUS_URL_ENV

    with tempfile.TemporaryDirectory() as folder, _restored_environment():
        aws = EmbeddedAws()
        os.environ[CA_DIR_ENV] = f"{folder}/ca"
        os.environ[OCSP_DIR_ENV] = f"{folder}/ocsp"
        os.environ[STATUS_URL_ENV] = "http://status.example.invalid"
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # no log line per measured request
        aws.start()
        try:
            runtime = build_runtime()
            files = prepare_bootstrap(
                Path(folder) / "bootstrap", runtime.settings.tenants[0].id, runtime.credentials
            )
            seed = Seed.load(files.seed_pem, files.seed_key)
            user, _, password = files.est_credentials.read_text().strip().partition(":")
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            host = LambdaHost(ACCOUNT_ID, REGION)
            indexes = {
                os.environ[spec.env_var]: [
                    (i.partition_key.name, i.sort_key.name if i.sort_key else None, i.projection)
                    for i in spec.indexes
                ]
                for spec in TABLES
            }

            def certifier(index: int) -> dict[str, Any]:
                key = ec.generate_private_key(ec.SECP256R1())
                body = certificate_request(libcertifier_csr(key), nodeAddress=f"cost-c{index}")
                return proxy_event(
                    "POST",
                    "/v1/certifier/certificate",
                    headers(x509_token(seed.certificate, seed.key)),
                    pretty_json(body).encode(),
                    "127.0.0.1",
                )

            def est(index: int) -> dict[str, Any]:
                key = ec.generate_private_key(ec.SECP256R1())
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cost-e{index}")])
                csr = (
                    x509.CertificateSigningRequestBuilder()
                    .subject_name(name)
                    .sign(key, hashes.SHA256())
                )
                body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
                return proxy_event(
                    "POST",
                    "/.well-known/est/simpleenroll",
                    {"Content-Type": "application/pkcs10", "Authorization": f"Basic {basic}"},
                    body,
                    "127.0.0.1",
                )

            doors: dict[str, Callable[[int], dict[str, Any]]] = {
                "certifier_x509": certifier,
                "est_basic": est,
            }
            profiles: dict[str, WorkProfile] = {}
            for door, make_event in doors.items():
                runs: list[tuple[float, Tally]] = []
                for index in range(samples + 2):
                    event = make_event(index)
                    spec = route(event["path"])
                    assert spec is not None
                    recorder = CallRecorder(indexes)
                    with recording(recorder):
                        start = time.perf_counter()
                        response = host.invoke(spec, event)
                        wall = time.perf_counter() - start
                    if response.get("statusCode") != 200:
                        raise RuntimeError(f"{door}: {response.get('statusCode')}")
                    if index >= 2:  # the first two import the handler and warm caches
                        runs.append((wall, recorder.tally))
                profiles[door] = WorkProfile(
                    lambda_ms=round(
                        statistics.median(
                            (wall - tally.aws_seconds) * 1000 + tally.assumed_ms
                            for wall, tally in runs
                        ),
                        2,
                    ),
                    dynamodb_wru=statistics.median(t.wru for _, t in runs),
                    dynamodb_rru=statistics.median(t.rru for _, t in runs),
                    eventbridge_events=statistics.median(t.events for _, t in runs),
                )
        finally:
            aws.stop()
    return profiles


def measure(samples: int = 20, monthly: int = MONTHLY_CERTIFICATES) -> dict[str, Any]:
    """cost_per_million_usd per engine for a fleet enrolling half through each door."""
    doors = measure_work(samples)
    mixed = WorkProfile(
        **{
            name: statistics.mean(float(getattr(p, name)) for p in doors.values())
            for name in ("lambda_ms", "dynamodb_wru", "dynamodb_rru", "eventbridge_events")
        }
    )
    breakdown = {
        engine: cost_breakdown(engine_profile(mixed, engine), engine, monthly) for engine in ENGINES
    }
    return {
        "cost_per_million_usd": {
            engine: round(sum(parts.values()), 2) for engine, parts in breakdown.items()
        },
        "cost_breakdown_usd_per_million": breakdown,
        "cost_work_per_certificate": {door: asdict(p) for door, p in doors.items()},
        "cost_assumptions": {
            "monthly_certificates": monthly,
            "door_mix": "half Certifier API (X509 seed), half EST (HTTP Basic)",
            "assumed_call_ms": ASSUMED_CALL_MS,
            "assumed_pca_issue_ms": ASSUMED_PCA_ISSUE_MS,
            "prices": PRICES,
        },
    }
