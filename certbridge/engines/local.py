"""A software CA whose root and issuing keys live in files (dev, tests, air-gapped labs).

On first use it creates a root and an issuing CA of one algorithm (P-256 by default, or
ML-DSA-44/65/87 for a post-quantum hierarchy) in a temporary folder and renames the folder
into place, so two processes starting at once agree on one CA. Keys are written with mode
0600 and never leave this module except as signatures.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

from certbridge.certificates import (
    CA_BACKDATE,
    ISSUING_VALIDITY,
    ROOT_VALIDITY,
    ca_certificate_builder,
    ca_name,
)
from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
)
from certbridge.remote_signing import key_kind
from certbridge.tbs_template import P256TbsTemplate

# Any of these can be certified whatever the CA's own algorithm: policy picks per profile.
SUBJECT_KEY_ALGORITHMS = ("P-256", "P-384", "Ed25519", "RSA", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
DEFAULT_ALGORITHM = "P-256"
# CA algorithm -> the signature algorithm as cryptography names it in the certificates.
SIGNING_ALGORITHMS = {
    "P-256": "ecdsa-with-SHA256",
    "ML-DSA-44": "ML-DSA-44",
    "ML-DSA-65": "ML-DSA-65",
    "ML-DSA-87": "ML-DSA-87",
}


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


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in SIGNING_ALGORITHMS:
        raise PermanentEngineError(
            f"the local CA supports {sorted(SIGNING_ALGORITHMS)}, not {algorithm!r}"
        )
    return algorithm


def _generate_key(algorithm: str) -> CertificateIssuerPrivateKeyTypes:
    if algorithm == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    levels = {
        "ML-DSA-44": mldsa.MLDSA44PrivateKey,
        "ML-DSA-65": mldsa.MLDSA65PrivateKey,
        "ML-DSA-87": mldsa.MLDSA87PrivateKey,
    }
    return levels[_check_algorithm(algorithm)].generate()


def _digest(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    """ECDSA P-256 pairs with SHA-256; ML-DSA signs the message itself (no digest argument)."""
    return hashes.SHA256() if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _ca_certificate(
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    path_length: int | None,
) -> x509.Certificate:
    builder = ca_certificate_builder(
        subject, public_key, issuer, issuer_key.public_key(), not_before, not_after, path_length
    )
    return builder.sign(issuer_key, _digest(issuer_key))


def create_local_ca(
    directory: Path, name: str, organization: str = "certplane", algorithm: str = DEFAULT_ALGORITHM
) -> None:
    """Create root and issuing CA files in `directory` unless another process already did.

    Root and issuing CA share `algorithm`: a post-quantum hierarchy is only as strong as its
    weakest signature, so an ML-DSA issuing CA under a P-256 root would gain nothing.
    """
    if (directory / "issuing.pem").exists():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - CA_BACKDATE
    root_key = _generate_key(algorithm)
    issuing_key = _generate_key(algorithm)
    root_name = ca_name(f"{name} Root CA", organization)
    issuing_name = ca_name(f"{name} Issuing CA", organization)
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


def _is_issuer_key(key: object) -> bool:
    return isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | mldsa.MLDSA44PrivateKey
        | mldsa.MLDSA65PrivateKey
        | mldsa.MLDSA87PrivateKey,
    )


class LocalCAEngine:
    """Signs with an issuing CA (P-256 or ML-DSA) whose key is a file under the directory."""

    def __init__(
        self,
        engine_id: str,
        directory: str | Path,
        name: str | None = None,
        create: bool = True,
        algorithm: str = DEFAULT_ALGORITHM,
    ) -> None:
        self._engine_id = engine_id
        self._directory = Path(directory)
        self._algorithm = _check_algorithm(algorithm)
        if create:
            create_local_ca(self._directory, name or f"certplane {engine_id}", algorithm=algorithm)
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
        # A CA created earlier with another algorithm is never silently used instead.
        found = key_kind(self._issuing.public_key())
        if found != algorithm:
            raise PermanentEngineError(
                f"local CA {engine_id}: {self._directory} holds a {found} CA, "
                f"not the configured {algorithm}"
            )
        if not _is_issuer_key(key) or key.public_key() != self._issuing.public_key():
            raise PermanentEngineError(
                f"local CA {engine_id}: issuing.key does not match issuing.pem"
            )
        self._issuing_key: CertificateIssuerPrivateKeyTypes = key
        # P-256 issuers sign from a pre-encoded TBS template (about twice the builder's rate);
        # requests it cannot encode identically still go through the builder.
        self._template = (
            P256TbsTemplate(self._issuing, key)
            if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
            else None
        )

    @property
    def engine_id(self) -> str:
        return self._engine_id

    def capabilities(self) -> Capabilities:
        not_after = self._issuing.not_valid_after_utc
        now = datetime.datetime.now(datetime.UTC)
        return Capabilities(
            engine_type="local",
            signing_algorithm=SIGNING_ALGORITHMS[self._algorithm],
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=max(not_after - now, datetime.timedelta(0)),
            ca_not_after=not_after,
            supports_revocation=True,
            supports_crl_signing=True,
        )

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        certificate = self._template.certificate(request) if self._template else None
        if certificate is None:
            certificate = self.issue_with_builder(request)
        return IssuedCertificate(certificate=certificate, chain=self.chain())

    def issue_with_builder(self, request: SigningRequest) -> x509.Certificate:
        """cryptography's CertificateBuilder: every key and extension kind (the reference the
        template path is tested against)."""
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
        return builder.sign(self._issuing_key, _digest(self._issuing_key))

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        """Sign a CRL as the issuing CA: its name, its key identifier, its key."""
        builder = builder.issuer_name(self._issuing.subject).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
            critical=False,
        )
        return builder.sign(self._issuing_key, _digest(self._issuing_key))

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """Nothing to tell a file-based CA: revocation state lives in the inventory."""

    def chain(self) -> tuple[x509.Certificate, ...]:
        return (self._issuing, self._root)
