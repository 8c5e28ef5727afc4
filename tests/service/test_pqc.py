"""Post-quantum issuance: the `pqc` profile's ML-DSA-65 hierarchy, checked by two implementations.

Every ML-DSA signature is verified with cryptography (OpenSSL) and again with dilithium-py, an
independent pure-Python FIPS 204 implementation (pure ML-DSA, empty context, over the
TBSCertificate bytes with the issuer's raw public key), so a bug shared by our signing path and
one library cannot pass unnoticed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

from certbridge import PermanentEngineError
from certbridge.engines.kms import KmsCAEngine, create_kms_hierarchy
from certbridge.engines.local import LocalCAEngine
from certplane.config import Settings
from certplane.errors import RequestRejected
from certplane.lifecycle import IssueRequest, Lifecycle
from certplane.runtime import create_engine
from tests.conftest import EventTap, LifecycleFactory, csr_pem, subject_name
from tests.kms_standin import KmsStandIn

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
LINT_CHAIN = Path(sys.executable).with_name("lint_pkix_signer_signee_cert_chain")
DILITHIUM = {"ML-DSA-44": ML_DSA_44, "ML-DSA-65": ML_DSA_65, "ML-DSA-87": ML_DSA_87}
MLDSA_PUBLIC_KEYS = {
    "ML-DSA-44": mldsa.MLDSA44PublicKey,
    "ML-DSA-65": mldsa.MLDSA65PublicKey,
    "ML-DSA-87": mldsa.MLDSA87PublicKey,
}
MLDSA_KEYS = {
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}


def new_key(kind: str) -> Any:
    if kind == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    return MLDSA_KEYS[kind].generate()


def pem_csr(key: Any, common_name: str = "pq-device-1") -> str:
    """A CSR signed by `key`; ML-DSA keys sign CSRs without a separate digest."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return csr_pem(key, common_name)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject_name(common_name))
    return csr.sign(key, None).public_bytes(serialization.Encoding.PEM).decode()


def dilithium_verifies(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """dilithium-py's verdict on `certificate`'s signature by `issuer` (FIPS 204, ctx = b"")."""
    algorithm = certificate.signature_algorithm_oid._name
    raw_key = issuer.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return DILITHIUM[algorithm].verify(
        raw_key, certificate.tbs_certificate_bytes, certificate.signature, ctx=b""
    )


def assert_chain_verifies_twice(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]):
    """Leaf, issuing CA and root, each by cryptography and by dilithium-py."""
    issuing, root = chain
    for child, parent in ((leaf, issuing), (issuing, root), (root, root)):
        child.verify_directly_issued_by(parent)
        assert dilithium_verifies(child, parent)
    # the oracle is not vacuous: one changed TBS byte and it refuses
    tampered = bytearray(leaf.tbs_certificate_bytes)
    tampered[-1] ^= 0x01
    raw = issuing.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    algorithm = leaf.signature_algorithm_oid._name
    assert not DILITHIUM[algorithm].verify(raw, bytes(tampered), leaf.signature)


def load(pem: str | None) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates((pem or "").encode()))


@pytest.fixture
def pqc_engine(tmp_path: Path) -> LocalCAEngine:
    """The `local-pqc` CA exactly as the default configuration registers it."""
    registration = next(ca for ca in Settings.load().cas if ca.id == "local-pqc")
    engine = create_engine(registration, tmp_path / "ca")
    assert isinstance(engine, LocalCAEngine)
    return engine


@pytest.fixture
def pqc_lifecycle(
    make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine, pqc_engine: LocalCAEngine
) -> Lifecycle:
    return make_lifecycle(Settings.load(), {"local-dev": local_engine, "local-pqc": pqc_engine})


@pytest.mark.parametrize("subject_key", ["ML-DSA-65", "P-256"])
def test_pqc_profile_issues_mldsa65_certificates(
    pqc_lifecycle: Lifecycle, events: EventTap, tmp_path: Path, subject_key: str
) -> None:
    key = new_key(subject_key)
    record = pqc_lifecycle.issue(
        IssueRequest(tenant="default", profile="pqc", csr=pem_csr(key), requester="tests")
    )
    assert record.status == "ISSUED" and record.ca_id == "local-pqc"
    assert record.key_algorithm == subject_key
    (leaf,) = load(record.certificate_pem)
    chain = load(record.chain_pem)
    assert leaf.signature_algorithm_oid._name == "ML-DSA-65"
    assert [c.signature_algorithm_oid._name for c in chain] == ["ML-DSA-65", "ML-DSA-65"]
    assert all(isinstance(c.public_key(), mldsa.MLDSA65PublicKey) for c in chain)
    assert leaf.public_key() == key.public_key()
    assert_chain_verifies_twice(leaf, chain)

    leaf_pem = tmp_path / "leaf.pem"
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    issuing_pem = tmp_path / "issuing.pem"
    issuing_pem.write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    lint = subprocess.run(
        [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(leaf_pem)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout
    pair = subprocess.run(
        [str(LINT_CHAIN), "lint", "-s", "WARNING", str(issuing_pem), str(leaf_pem)],
        capture_output=True,
        text=True,
    )
    assert pair.returncode == 0, pair.stdout

    ((kind, detail),) = events()
    assert kind == "Certificate Issued"
    assert detail["certificate"]["keyAlgorithm"] == subject_key


@pytest.mark.parametrize(
    ("profile", "subject_key"),
    [("pqc", "ML-DSA-44"), ("pqc", "ML-DSA-87"), ("device", "ML-DSA-65"), ("compact", "ML-DSA-65")],
)
def test_mldsa_keys_only_where_a_profile_allows_them(
    pqc_lifecycle: Lifecycle, profile: str, subject_key: str
) -> None:
    request = IssueRequest(
        tenant="default", profile=profile, csr=pem_csr(new_key(subject_key)), requester="tests"
    )
    with pytest.raises(RequestRejected) as caught:
        pqc_lifecycle.issue(request)
    assert caught.value.code == "unsupported_key"


def _rerouted(profile: str, route: list[str], settings: Settings) -> Settings:
    data = settings.model_dump()
    for entry in data["profiles"]:
        if entry["name"] == profile:
            entry["route"] = route
    return Settings.model_validate(data)


def test_switching_a_profile_to_the_pqc_route_needs_no_client_change(
    make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine, pqc_engine: LocalCAEngine
) -> None:
    """One IssueRequest, byte for byte; only the profile's route changes in configuration."""
    engines = {"local-dev": local_engine, "local-pqc": pqc_engine}
    request = IssueRequest(
        tenant="default", profile="device", csr=pem_csr(new_key("P-256")), requester="fleet"
    )
    before = make_lifecycle(Settings.load(), engines).issue(request)
    after = make_lifecycle(_rerouted("device", ["local-pqc"], Settings.load()), engines).issue(
        request
    )
    (classic,) = load(before.certificate_pem)
    (quantum_safe,) = load(after.certificate_pem)
    assert classic.signature_algorithm_oid._name == "ecdsa-with-SHA256"
    assert quantum_safe.signature_algorithm_oid._name == "ML-DSA-65"
    assert (before.ca_id, after.ca_id) == ("local-dev", "local-pqc")
    assert classic.subject == quantum_safe.subject
    assert classic.public_key() == quantum_safe.public_key()
    # policy's extensions are the same; only the issuer's key identifier differs
    aki = x509.AuthorityKeyIdentifier.oid
    assert [e for e in classic.extensions if e.oid != aki] == [
        e for e in quantum_safe.extensions if e.oid != aki
    ]
    assert_chain_verifies_twice(quantum_safe, load(after.chain_pem))


def test_pqc_profile_on_a_kms_mldsa65_key(
    make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine
) -> None:
    """The same profile routed to KMS (ML_DSA_65 key, via the stand-in): kms:Sign does it all."""
    kms = KmsStandIn()
    hierarchy = create_kms_hierarchy(kms, "ML_DSA_65", "certplane kms pqc", alias_prefix="pqc")
    engine = KmsCAEngine(
        "kms-pqc", key_id="alias/pqc-issuing", chain_pem=hierarchy.chain_pem, kms_client=kms
    )
    data = Settings.load().model_dump()
    data["cas"].append({"id": "kms-pqc", "engine": "kms", "options": {}})
    settings = _rerouted("pqc", ["kms-pqc"], Settings.model_validate(data))
    lifecycle = make_lifecycle(settings, {"local-dev": local_engine, "kms-pqc": engine})
    record = lifecycle.issue(
        IssueRequest(
            tenant="default", profile="pqc", csr=pem_csr(new_key("ML-DSA-65")), requester="tests"
        )
    )
    (leaf,) = load(record.certificate_pem)
    assert record.ca_id == "kms-pqc"
    assert_chain_verifies_twice(leaf, load(record.chain_pem))
    sign = kms.signed()[-1]
    assert sign["MessageType"] == "RAW" and sign["SigningAlgorithm"] == "ML_DSA_SHAKE_256"
    assert sign["Message"] == leaf.tbs_certificate_bytes


# -- the local engine's ML-DSA hierarchy -----------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"])
def test_local_mldsa_hierarchy(tmp_path: Path, algorithm: str) -> None:
    engine = LocalCAEngine("pq", tmp_path / "ca", algorithm=algorithm)
    issuing, root = engine.chain()
    assert engine.capabilities().signing_algorithm == algorithm
    assert {"ML-DSA-65", "P-256"} <= set(engine.capabilities().subject_key_algorithms)
    for certificate in (issuing, root):
        assert certificate.signature_algorithm_oid._name == algorithm
        assert isinstance(certificate.public_key(), MLDSA_PUBLIC_KEYS[algorithm])
    issuing.verify_directly_issued_by(root)
    assert dilithium_verifies(issuing, root) and dilithium_verifies(root, root)
    for name in ("root.key", "issuing.key"):
        assert stat.S_IMODE(os.stat(tmp_path / "ca" / name).st_mode) == 0o600
    again = LocalCAEngine("pq", tmp_path / "ca", algorithm=algorithm)
    assert again.chain() == engine.chain()


def test_local_ca_refuses_a_directory_of_another_algorithm(tmp_path: Path) -> None:
    LocalCAEngine("classic", tmp_path / "ca")
    with pytest.raises(
        PermanentEngineError, match="holds a P-256 CA, not the configured ML-DSA-65"
    ):
        LocalCAEngine("classic", tmp_path / "ca", algorithm="ML-DSA-65")
    LocalCAEngine("pq", tmp_path / "pq", algorithm="ML-DSA-65")
    with pytest.raises(PermanentEngineError, match="holds a ML-DSA-65 CA"):
        LocalCAEngine("pq", tmp_path / "pq")
    with pytest.raises(PermanentEngineError, match="supports"):
        LocalCAEngine("odd", tmp_path / "odd", algorithm="SLH-DSA-128s")
