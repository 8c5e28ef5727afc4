"""A software CA whose root and issuing keys live in files (dev, tests, air-gapped labs).

On first use it creates a P-256 root and a P-256 issuing CA in a temporary folder and renames
the folder into place, so two processes starting at once agree on one CA. Keys are written
with mode 0600 and never leave this module except as signatures.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
)

ROOT_VALIDITY = datetime.timedelta(days=20 * 365)
ISSUING_VALIDITY = datetime.timedelta(days=10 * 365)
CA_BACKDATE = datetime.timedelta(hours=1)  # leaves are backdated too; issuers must cover them
SUBJECT_KEY_ALGORITHMS = ("P-256", "P-384", "Ed25519", "RSA")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _ca_name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    path_length: int | None,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def create_local_ca(directory: Path, name: str, organization: str = "certplane") -> None:
    """Create root and issuing CA files in `directory` unless another process already did."""
    if (directory / "issuing.pem").exists():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - CA_BACKDATE
    root_key = ec.generate_private_key(ec.SECP256R1())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _ca_name(f"{name} Root CA", organization)
    issuing_name = _ca_name(f"{name} Issuing CA", organization)
    root = _ca_certificate(
        root_name, root_key.public_key(), root_name, root_key, now, now + ROOT_VALIDITY, None
    )
    issuing = _ca_certificate(
        issuing_name,
        issuing_key.public_key(),
        root_name,
        root_key,
        now,
        now + ISSUING_VALIDITY,
        0,
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    for file_name, key in (("root.key", root_key), ("issuing.key", issuing_key)):
        pem = key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
        _write_private(staging / file_name, pem)
    _write_public(staging / "root.pem", root.public_bytes(serialization.Encoding.PEM))
    _write_public(staging / "issuing.pem", issuing.public_bytes(serialization.Encoding.PEM))
    try:
        staging.rename(directory)
    except OSError:
        # Another process won the race (or the folder exists): keep its CA, drop ours.
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()


class LocalCAEngine:
    """Signs with a P-256 issuing CA whose key is a file under the engine's directory."""

    def __init__(
        self, engine_id: str, directory: str | Path, name: str | None = None, create: bool = True
    ) -> None:
        self._engine_id = engine_id
        self._directory = Path(directory)
        if create:
            create_local_ca(self._directory, name or f"certplane {engine_id}")
        elif not (self._directory / "issuing.pem").exists():
            raise PermanentEngineError(
                f"local CA {engine_id}: no CA in {self._directory} and creation is disabled"
            )
        self._root = x509.load_pem_x509_certificate((self._directory / "root.pem").read_bytes())
        self._issuing = x509.load_pem_x509_certificate(
            (self._directory / "issuing.pem").read_bytes()
        )
        key = serialization.load_pem_private_key(
            (self._directory / "issuing.key").read_bytes(), password=None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self._directory}/issuing.key is not an EC key")
        self._issuing_key = key

    @property
    def engine_id(self) -> str:
        return self._engine_id

    def capabilities(self) -> Capabilities:
        not_after = self._issuing.not_valid_after_utc
        now = datetime.datetime.now(datetime.UTC)
        return Capabilities(
            engine_type="local",
            signing_algorithm="ecdsa-with-SHA256",
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=max(not_after - now, datetime.timedelta(0)),
            ca_not_after=not_after,
            supports_revocation=True,
            supports_crl_signing=False,  # CRL signing arrives with the revocation layer
        )

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self._issuing.subject)
            .public_key(request.public_key)
            .serial_number(request.serial_number)
            .not_valid_before(request.not_before)
            .not_valid_after(request.not_after)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
                critical=False,
            )
        )
        for extension in request.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        certificate = builder.sign(self._issuing_key, hashes.SHA256())
        return IssuedCertificate(certificate=certificate, chain=self.chain())

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """Nothing to tell a file-based CA: revocation state lives in the inventory."""

    def chain(self) -> tuple[x509.Certificate, ...]:
        return (self._issuing, self._root)
