"""crl_shard_seconds / crl_shard_bytes (a shard CRL of N entries, built and signed by the local
engine) and ocsp_responses_per_s (the responder parsing, signing and encoding in process).

The CRL is built by CrlPublisher._build itself (CRLNumber from the status table in moto, a
critical Issuing Distribution Point, one entry per revoked serial; keyCompromise on a tenth,
unspecified — no extension — on the rest). Reading the entries from DynamoDB is left out: it
is a Query per write shard whose cost the renewal benchmark already shows.

The OCSP responder reads the inventory through a dict here (a DynamoDB read is a network
round trip in AWS and moto's cost in process, neither of which is the responder's); every
request carries a nonce, so each response is signed afresh (no cache hits).
"""

from __future__ import annotations

import datetime
import os
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from bench.aws import embedded_aws
from bench.timing import interleaved, one_core, seconds
from certbridge import EngineRouter, SigningRequest
from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.model import CertificateStatus, new_serial_number
from certplane.status.crl import CrlPublisher, RevokedEntry
from certplane.status.ocsp import OcspResponder
from certplane.status.ocsp_signer import OcspSigners
from certplane.status.urls import StatusUrls

CA_ID = "local-dev"


def shard_crl(
    engine: LocalCAEngine, entries: int, seed: int = 8, chained: bool = False
) -> x509.CertificateRevocationList:
    """Build and sign one shard CRL of `entries` revoked serials.

    `chained` adds entries one by one as CrlPublisher._build did before issue 8; each
    `add_revoked_certificate` copies the list so far (quadratic). Otherwise the entries are
    handed to the builder's constructor in one list, to show what that would save.
    """
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    point = x509.UniformResourceIdentifier(f"http://status.test/crl/{CA_ID}/0.crl")
    extensions = [
        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1)),
        x509.Extension(
            x509.IssuingDistributionPoint.oid,
            True,
            x509.IssuingDistributionPoint(
                full_name=[point],
                relative_name=None,
                only_contains_user_certs=True,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
        ),
    ]
    validity = {"last_update": now, "next_update": now + datetime.timedelta(hours=24)}
    listed = []
    for index in range(entries):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(rng.getrandbits(63) | (1 << 63))
            .revocation_date(now - datetime.timedelta(seconds=index))
        )
        if index % 10 == 0:
            revoked = revoked.add_extension(
                x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False
            )
        listed.append(revoked.build())
    if chained:
        builder = x509.CertificateRevocationListBuilder(**validity, extensions=extensions)
        for entry in listed:
            builder = builder.add_revoked_certificate(entry)
    else:
        builder = x509.CertificateRevocationListBuilder(
            **validity, extensions=extensions, revoked_certificates=listed
        )
    return engine.sign_crl(builder)


def _entries(count: int, seed: int = 8) -> list[RevokedEntry]:
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return [
        RevokedEntry(
            pk=f"bench#{index}",
            serial=rng.getrandbits(63) | (1 << 63),
            revoked_at=now - datetime.timedelta(seconds=index),
            reason="keyCompromise" if index % 10 == 0 else "unspecified",
            not_after=now + datetime.timedelta(days=300),
            final_number=None,
        )
        for index in range(count)
    ]


def measure_crl(sizes: tuple[int, ...] = (10_000, 100_000)) -> dict[str, Any]:
    """Seconds for CrlPublisher._build (entries → signed shard CRL) and the DER bytes, one run
    per size; plus the same CRL through chained add_revoked_certificate (the shape before
    issue 8) for comparison."""
    with tempfile.TemporaryDirectory() as folder, embedded_aws():
        engine = LocalCAEngine(CA_ID, Path(folder) / "ca")
        publisher = CrlPublisher(
            Settings.load(),
            None,  # type: ignore[arg-type]  # _build reads neither inventory, events nor store
            EngineRouter({CA_ID: engine}),
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            StatusUrls("http://status.test"),
        )
        publisher._build(CA_ID, 0, _entries(1), datetime.datetime.now(datetime.UTC))  # warm up
        timings: dict[str, float] = {}
        chained: dict[str, float] = {}
        sizes_bytes: dict[str, int] = {}
        for size in sizes:
            entries = _entries(size)
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            built: list[x509.CertificateRevocationList] = []
            with one_core():
                timings[str(size)] = round(
                    seconds(
                        lambda e=entries, b=built, n=now: b.append(publisher._build(CA_ID, 0, e, n))
                    ),
                    3,
                )
                chained[str(size)] = round(
                    seconds(lambda size=size: shard_crl(engine, size, chained=True)), 3
                )
            sizes_bytes[str(size)] = len(built[0].public_bytes(serialization.Encoding.DER))
    return {
        "crl_shard_seconds": timings,
        "crl_shard_bytes": sizes_bytes,
        "crl_shard_seconds_chained_builder": chained,
    }


@dataclass
class _Record:
    """The fields of an inventory record the responder reads."""

    status: str
    revoked_at: datetime.datetime | None = None
    revocation_reason: str | None = None


class _DictInventory:
    """`Inventory.get_by_issuer_serial` over a dict: the responder's only inventory read."""

    def __init__(self, records: dict[tuple[str, int], _Record]) -> None:
        self.records = records

    def get_by_issuer_serial(self, ca_id: str, serial: int) -> _Record | None:
        return self.records.get((ca_id, serial))


def _leaf(engine: LocalCAEngine, serial: int) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    request = SigningRequest(
        serial_number=serial,
        public_key=key,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"node-{serial:x}")]),
        not_before=now,
        not_after=now + datetime.timedelta(days=30),
    )
    return engine.issue(request).certificate


def measure_ocsp(requests: int = 2000, rounds: int = 5, certificates: int = 32) -> dict[str, Any]:
    """Signed OCSP responses per second (one core), fresh nonces, median over rounds."""
    with tempfile.TemporaryDirectory() as folder:
        engine = LocalCAEngine(CA_ID, Path(folder) / "ca")
        issuing = engine.chain()[0]
        settings = Settings.load()
        router = EngineRouter({CA_ID: engine})
        records: dict[tuple[str, int], _Record] = {}
        leaves = []
        for index in range(certificates):
            serial = new_serial_number()
            revoked = index % 4 == 0
            records[(CA_ID, serial)] = _Record(
                CertificateStatus.REVOKED.value if revoked else CertificateStatus.ISSUED.value,
                datetime.datetime.now(datetime.UTC).replace(microsecond=0) if revoked else None,
                "keyCompromise" if revoked else None,
            )
            leaves.append(_leaf(engine, serial))
        signers = OcspSigners(settings, router, Path(folder) / "ocsp")
        responder = OcspResponder(settings, _DictInventory(records), router, signers)  # type: ignore[arg-type]
        bodies = [
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaves[index % certificates], issuing, hashes.SHA1())
            .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            .build()
            .public_bytes(serialization.Encoding.DER)
            for index in range(requests)
        ]

        def answer_all() -> None:
            for body in bodies:
                response = responder.respond(body)
                if not response.body.startswith(b"\x30"):
                    raise RuntimeError("the responder did not answer")

        with one_core():
            answer_all()  # the responder certificate is issued on first use
            samples = interleaved({"ocsp": answer_all}, rounds)["ocsp"]
        sample = ocsp.load_der_ocsp_response(responder.respond(bodies[0]).body)
        if sample.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RuntimeError(f"OCSP answered {sample.response_status}")
    return {
        "ocsp_responses_per_s": round(requests / statistics.median(samples)),
        "ocsp_response_bytes": len(sample.public_bytes(serialization.Encoding.DER)),
    }
