"""engine_vs_raw_sign_ratio: compact P-256 device certificates per second through the local
engine, divided by raw P-256 ECDSA signatures per second of the same library, same run.

Policy runs before the clock starts (it is not the engine's work); each round issues the same
prepared requests through `LocalCAEngine.issue` (the pre-encoded TBS template), through the
builder path (for reference), and signs as many TBS-sized messages with the bare key. The
requests carry the device's CSR as the lifecycle's do (the template reuses its key DER).
"""

from __future__ import annotations

import datetime
import statistics
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.timing import interleaved, median_ratio, one_core
from certbridge import EngineRouter, SigningRequest
from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.model import new_serial_number
from certplane.policy import plan_certificate

PROFILE = "compact"


def compact_requests(engine: LocalCAEngine, count: int, keys: int = 64) -> list[SigningRequest]:
    """`count` compact-profile requests as policy approves them (a pool of device keys)."""
    profile = Settings.load().profiles_by_name[PROFILE]
    ca_not_after = engine.capabilities().ca_not_after
    now = datetime.datetime.now(datetime.UTC)
    pool = [_device_csr(ec.generate_private_key(ec.SECP256R1()), index) for index in range(keys)]
    requests = []
    for index in range(count):
        csr = pool[index % keys]
        plan = plan_certificate(
            profile,
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"node-{index:012x}")]),
            requested_sans=[],
            public_key=csr.public_key(),
            ca_not_after=ca_not_after,
            now=now,
        )
        requests.append(
            SigningRequest(
                serial_number=new_serial_number(profile.serial_bytes),
                public_key=plan.public_key,
                subject=plan.subject,
                not_before=plan.not_before,
                not_after=plan.not_after,
                extensions=plan.extensions,
                csr_der=csr.public_bytes(serialization.Encoding.DER),
            )
        )
    return requests


def _device_csr(key: ec.EllipticCurvePrivateKey, index: int) -> x509.CertificateSigningRequest:
    """What a device sends: the lifecycle passes its DER along with the parsed key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"node-{index:012x}")])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def measure(count: int = 2000, rounds: int = 7) -> dict[str, Any]:
    """Rates (per second, one core) and the paired per-round ratios, medians over rounds."""
    with tempfile.TemporaryDirectory() as folder:
        engine = LocalCAEngine("bench", Path(folder) / "ca")
        key = serialization.load_pem_private_key(
            (Path(folder) / "ca" / "issuing.key").read_bytes(), password=None
        )
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        requests = compact_requests(engine, count)
        sample = engine.issue(requests[0]).certificate
        message = sample.tbs_certificate_bytes
        algorithm = ec.ECDSA(hashes.SHA256())

        def through_engine() -> None:
            for request in requests:
                engine.issue(request)

        router = EngineRouter({"bench": engine})

        def through_router() -> None:  # what the lifecycle calls: lint before sign, then issue
            for request in requests:
                router.issue(["bench"], request)

        def through_builder() -> None:
            for request in requests:
                engine.issue_with_builder(request)

        def raw_sign() -> None:
            for _ in range(count):
                key.sign(message, algorithm)

        with one_core():
            through_engine()  # warm caches before the first timed round
            samples = interleaved(
                {
                    "engine": through_engine,
                    "routed": through_router,
                    "builder": through_builder,
                    "raw": raw_sign,
                },
                rounds,
            )
    rate = {name: count / statistics.median(times) for name, times in samples.items()}
    return {
        # Rates are count / seconds, so the rate ratio is the inverse time ratio.
        "engine_vs_raw_sign_ratio": round(median_ratio(samples["raw"], samples["engine"]), 3),
        "builder_vs_raw_sign_ratio": round(median_ratio(samples["raw"], samples["builder"]), 3),
        # For reference, the same engine behind the router (lint before sign, routing).
        "routed_vs_raw_sign_ratio": round(median_ratio(samples["raw"], samples["routed"]), 3),
        "engine_certs_per_s": round(rate["engine"]),
        "builder_certs_per_s": round(rate["builder"]),
        "routed_certs_per_s": round(rate["routed"]),
        "raw_p256_signs_per_s": round(rate["raw"]),
        "compact_certificate_bytes": len(sample.public_bytes(serialization.Encoding.DER)),
    }
