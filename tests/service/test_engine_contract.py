"""The CertBridge contract, held by every engine in tests/engine_factories.

Issue, chain and revoke where supported; capabilities that match what is actually signed;
requests the engine must refuse are refused; output checked by openssl and pkilint.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certbridge import CAEngine, EngineRouter, PermanentEngineError, SigningRequest
from certplane.config import Settings
from certplane.policy import plan_certificate
from tests.engine_factories import factories

FACTORIES = factories()
LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
CLASSIC = (
    "ecdsa-with-SHA256",
    "ecdsa-with-SHA384",
    "sha256WithRSAEncryption",
    "sha512WithRSAEncryption",
)


@pytest.fixture(params=FACTORIES, ids=[factory.NAME for factory in FACTORIES])
def factory(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


@pytest.fixture
def engine(factory: ModuleType, aws, tmp_path: Path) -> CAEngine:
    return factory.make_engine(tmp_path)


@pytest.fixture
def emulator_gaps(factory: ModuleType) -> frozenset[str]:
    """What the factory's stand-in for a real back end cannot do (e.g. moto's ACM PCA ignores
    Validity and templates), each excusing one named assertion below for that factory only."""
    return frozenset(getattr(factory, "EMULATOR_GAPS", ()))


@pytest.fixture
def dns_names(factory: ModuleType) -> tuple[str, ...]:
    """DNS names the contract requests carry: a public CA (ACME) certifies nothing else, so
    its factory names some (REQUEST_DNS_NAMES) and its requests use the `server` profile."""
    return tuple(getattr(factory, "REQUEST_DNS_NAMES", ()))


def device_request(
    engine: CAEngine, common_name: str = "contract-device", dns_names: tuple[str, ...] = ()
) -> SigningRequest:
    profile = Settings.load().tenant_profile("default", "server" if dns_names else "device")
    if dns_names:
        common_name = dns_names[0]
    assert profile is not None
    key = ec.generate_private_key(ec.SECP256R1())
    plan = plan_certificate(
        profile,
        subject=x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]),
        requested_sans=[x509.DNSName(name) for name in dns_names],
        public_key=key.public_key(),
        ca_not_after=engine.capabilities().ca_not_after,
        requested_days=30,
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(plan.subject)
    if plan.sans:
        csr = csr.add_extension(x509.SubjectAlternativeName(list(plan.sans)), critical=False)
    return SigningRequest(
        serial_number=0x5EED_0000_0000_0001,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
        csr_der=csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER),
    )


def test_it_is_a_ca_engine(engine: CAEngine) -> None:
    assert isinstance(engine, CAEngine)
    assert engine.engine_id


def test_issue_signs_exactly_the_request_and_chains(
    engine: CAEngine, tmp_path: Path, emulator_gaps: frozenset[str], dns_names: tuple[str, ...]
) -> None:
    request = device_request(engine, dns_names=dns_names)
    _, issued = EngineRouter({engine.engine_id: engine}).issue([engine.engine_id], request)
    certificate = issued.certificate
    if engine.capabilities().assigns_serial_numbers:  # AWS Private CA picks its own serials
        serial = certificate.serial_number
        assert serial > 0 and (serial.bit_length() + 8) // 8 <= 20
    else:
        assert certificate.serial_number == request.serial_number
    assert certificate.subject == request.subject
    assert certificate.public_key() == request.public_key
    if "validity" not in emulator_gaps:
        assert certificate.not_valid_after_utc == request.not_after
    chain = issued.chain
    assert chain == engine.chain() and len(chain) >= 2
    certificate.verify_directly_issued_by(chain[0])
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    chain[-1].verify_directly_issued_by(chain[-1])

    algorithm = certificate.signature_algorithm_oid._name
    assert algorithm == engine.capabilities().signing_algorithm
    leaf, intermediates, root = (
        tmp_path / "leaf.pem",
        tmp_path / "chain.pem",
        tmp_path / "root.pem",
    )
    leaf.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    intermediates.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[:-1])
    )
    root.write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
    # pkilint 0.13 knows ML-DSA (FIPS 204 key sizes, absent parameters, key usage rules).
    # "pkix_profile": an emulator's leaf lacks the extensions the request asked for (moto's PCA
    # writes only a SAN), so pkilint and `openssl -x509_strict` cannot pass on it.
    strict = "pkix_profile" not in emulator_gaps
    for pem in ((leaf,) if strict else ()) + (*_split(intermediates, tmp_path), root):
        lint = subprocess.run(
            [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(pem)],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout
    if algorithm in CLASSIC:  # openssl 3.0 here does not know ML-DSA
        verify = subprocess.run(
            [
                "openssl",
                "verify",
                *(["-x509_strict"] if strict else []),
                "-CAfile",
                str(root),
                "-untrusted",
                str(intermediates),
                str(leaf),
            ],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


def _split(bundle: Path, folder: Path) -> list[Path]:
    """One PEM file per certificate of `bundle` (pkilint lints one certificate a file)."""
    paths = []
    for index, certificate in enumerate(x509.load_pem_x509_certificates(bundle.read_bytes())):
        path = folder / f"ca-{index}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        paths.append(path)
    return paths


def test_capabilities_are_honest(engine: CAEngine) -> None:
    capabilities = engine.capabilities()
    issuing = engine.chain()[0]
    assert capabilities.ca_not_after == issuing.not_valid_after_utc
    remaining = capabilities.ca_not_after - datetime.datetime.now(datetime.UTC)
    assert capabilities.max_validity <= remaining + datetime.timedelta(seconds=5)
    assert capabilities.subject_key_algorithms
    assert capabilities.engine_type


def test_revoke_where_supported(engine: CAEngine, dns_names: tuple[str, ...]) -> None:
    request = device_request(engine, "to-revoke", dns_names)
    serial = engine.issue(request).certificate.serial_number  # the engine's, if it picks them
    when = datetime.datetime.now(datetime.UTC)
    if engine.capabilities().supports_revocation:
        engine.revoke(serial, x509.ReasonFlags.key_compromise, when)
    else:
        with pytest.raises(PermanentEngineError):
            engine.revoke(serial, x509.ReasonFlags.key_compromise, when)


def test_requests_outside_the_ca_are_refused_before_signing(
    engine: CAEngine, dns_names: tuple[str, ...]
) -> None:
    router = EngineRouter({engine.engine_id: engine})
    request = device_request(engine, dns_names=dns_names)
    too_long = dataclasses.replace(
        request, not_after=engine.capabilities().ca_not_after + datetime.timedelta(days=1)
    )
    for bad in (too_long, dataclasses.replace(request, serial_number=0)):
        with pytest.raises(PermanentEngineError):
            router.issue([engine.engine_id], bad)
