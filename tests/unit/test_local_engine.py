"""The local software CA: key files, reuse of an existing CA, chain order, honest capabilities."""

from __future__ import annotations

import datetime
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from certbridge import CAEngine, SigningRequest
from certbridge.engines import engine_class
from certbridge.engines import local as local_module
from certbridge.engines.local import LocalCAEngine
from certplane.model import key_algorithm, new_serial_number


def fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def signing_request(public_key, days: int = 30, **overrides) -> SigningRequest:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    fields = {
        "serial_number": new_serial_number(),
        "public_key": public_key,
        "subject": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-0001")]),
        "not_before": now - datetime.timedelta(minutes=5),
        "not_after": now + datetime.timedelta(days=days),
        "extensions": (
            x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(False, None)),
        ),
    }
    fields.update(overrides)
    return SigningRequest(**fields)


def test_registered_and_satisfies_the_protocol(local_engine):
    assert engine_class("local") is LocalCAEngine
    assert isinstance(local_engine, CAEngine)
    assert local_engine.engine_id == "local-dev"


def test_key_files_are_private(tmp_path):
    directory = tmp_path / "ca"
    LocalCAEngine("local-dev", directory)
    for name in ("root.key", "issuing.key"):
        mode = stat.S_IMODE(os.stat(directory / name).st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    assert not stat.S_IMODE(os.stat(directory).st_mode) & 0o077, "the CA folder is readable"
    for name in ("root.pem", "issuing.pem"):
        assert b"PRIVATE KEY" not in (directory / name).read_bytes()


def test_second_engine_reuses_the_ca(tmp_path):
    first = LocalCAEngine("local-dev", tmp_path / "ca")
    keys_before = {
        name: (tmp_path / "ca" / name).read_bytes() for name in ("root.key", "issuing.key")
    }
    second = LocalCAEngine("local-dev", tmp_path / "ca")
    assert [fingerprint(c) for c in second.chain()] == [fingerprint(c) for c in first.chain()]
    for name, data in keys_before.items():
        assert (tmp_path / "ca" / name).read_bytes() == data
    # what the second engine signs validates against the first engine's chain
    leaf = second.issue(signing_request(ec.generate_private_key(ec.SECP256R1()).public_key()))
    leaf.certificate.verify_directly_issued_by(first.chain()[0])


def test_engines_starting_at_once_agree_on_one_ca(tmp_path, monkeypatch):
    directory = tmp_path / "shared" / "ca"
    # every engine passes the "does a CA exist?" check before any of them renames its folder
    barrier = threading.Barrier(6, timeout=10)
    real_mkdtemp = local_module.tempfile.mkdtemp

    def mkdtemp_together(*args, **kwargs):
        barrier.wait()
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(local_module.tempfile, "mkdtemp", mkdtemp_together)
    with ThreadPoolExecutor(max_workers=6) as pool:
        engines = list(pool.map(lambda i: LocalCAEngine(f"e{i}", directory), range(6)))
    roots = {fingerprint(engine.chain()[1]) for engine in engines}
    assert len(roots) == 1
    assert sorted(p.name for p in directory.parent.iterdir()) == ["ca"], "staging left behind"


def test_chain_order_is_issuing_then_root(local_engine):
    issuing, root = local_engine.chain()
    assert issuing.subject != root.subject
    assert issuing.issuer == root.subject
    root.verify_directly_issued_by(root)
    issuing.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    issuing_bc = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert issuing_bc.ca and issuing_bc.path_length == 0
    for certificate in (issuing, root):
        assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
        assert certificate.public_key().curve.name == "secp256r1"

    result = local_engine.issue(
        signing_request(ec.generate_private_key(ec.SECP256R1()).public_key())
    )
    assert result.chain == (issuing, root)
    result.certificate.verify_directly_issued_by(issuing)


def test_issue_signs_exactly_the_request(local_engine):
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    request = signing_request(key, days=12)
    certificate = local_engine.issue(request).certificate
    assert certificate.serial_number == request.serial_number
    assert certificate.public_key() == key
    assert certificate.subject == request.subject
    assert certificate.issuer == local_engine.chain()[0].subject
    assert certificate.not_valid_before_utc == request.not_before
    assert certificate.not_valid_after_utc == request.not_after
    basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = local_engine.chain()[0].extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    assert aki.key_identifier == issuing_ski.value.digest
    assert {ext.oid for ext in certificate.extensions} == {
        x509.BasicConstraints.oid,
        x509.AuthorityKeyIdentifier.oid,
    }


@pytest.mark.parametrize("kind", ["P-256", "P-384", "Ed25519", "RSA-2048"])
def test_capabilities_are_honest(local_engine, csrs, kind):
    capabilities = local_engine.capabilities()
    issuing = local_engine.chain()[0]
    assert capabilities.engine_type == "local"
    assert capabilities.ca_not_after == issuing.not_valid_after_utc
    now = datetime.datetime.now(datetime.UTC)
    assert capabilities.max_validity <= capabilities.ca_not_after - now + datetime.timedelta(
        seconds=5
    )
    assert capabilities.max_validity > datetime.timedelta(days=365)

    # every advertised subject key algorithm really can be signed, with the advertised algorithm
    public_key = csrs.key(kind).public_key()
    family = "RSA" if kind.startswith("RSA") else key_algorithm(public_key)
    assert family in capabilities.subject_key_algorithms
    certificate = local_engine.issue(signing_request(public_key)).certificate
    assert certificate.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert capabilities.signing_algorithm == "ecdsa-with-SHA256"
    assert certificate.public_key() == public_key


def test_revoke_is_accepted(local_engine):
    capabilities = local_engine.capabilities()
    assert capabilities.supports_revocation
    now = datetime.datetime.now(datetime.UTC)
    local_engine.revoke(new_serial_number(), x509.ReasonFlags.key_compromise, now)
