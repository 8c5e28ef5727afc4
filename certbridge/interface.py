"""The CA-engine contract: what every engine (local, KMS, PKCS#11, PCA, ACME…) implements.

Modelled on smallstep's cas/apiv1: a small protocol, value objects in and out, and an engine
that cannot do something says so in its capabilities instead of failing at call time.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes


class EngineError(Exception):
    """An engine could not complete a request."""


class TransientEngineError(EngineError):
    """The engine may succeed later or another engine of the route may succeed now."""


class PermanentEngineError(EngineError):
    """Retrying will not help (the request itself is unacceptable to this engine)."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, reported honestly so routing and policy can rely on it."""

    engine_type: str
    signing_algorithm: str
    subject_key_algorithms: tuple[str, ...]
    max_validity: datetime.timedelta
    ca_not_after: datetime.datetime
    supports_revocation: bool
    supports_crl_signing: bool
    # A rate limit the back end enforces (AWS Private CA: the IssueCertificate quota), so the
    # router can spread load instead of discovering the limit through throttling; None = none.
    max_requests_per_second: float | None = None
    # The back end chooses the serial number itself (AWS Private CA): the certificate's serial
    # is then not the SigningRequest's, and whoever keys records by serial must know it.
    assigns_serial_numbers: bool = False


@dataclass(frozen=True)
class SigningRequest:
    """Everything the policy decided about one certificate; the engine adds only its signature."""

    serial_number: int
    public_key: CertificatePublicKeyTypes
    subject: x509.Name
    not_before: datetime.datetime
    not_after: datetime.datetime
    extensions: tuple[x509.Extension[x509.ExtensionType], ...] = field(default_factory=tuple)
    # The requester's own CSR (DER), for back ends that sign only CSRs (AWS Private CA): no one
    # but the key holder can make a CSR, so it is passed through; policy above still decides
    # subject, names and extensions. None when there is no CSR (a same-key renewal).
    csr_der: bytes | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed certificate and the chain that validates it (issuing CA first, root last)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


@runtime_checkable
class CAEngine(Protocol):
    """One certificate authority reachable through one signing back end."""

    @property
    def engine_id(self) -> str: ...

    def capabilities(self) -> Capabilities: ...

    def issue(self, request: SigningRequest) -> IssuedCertificate: ...

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None: ...

    def chain(self) -> tuple[x509.Certificate, ...]: ...


@runtime_checkable
class CRLSigningEngine(Protocol):
    """An engine that can sign CRLs with its CA key (capabilities().supports_crl_signing).

    Optional: engines whose back end cannot sign an arbitrary CRL (AWS Private CA, ACME) do
    not implement it and report supports_crl_signing=False.
    """

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        """Set the issuer name and AuthorityKeyIdentifier on `builder` and sign it."""
        ...


@runtime_checkable
class CertificateRevokingEngine(Protocol):
    """An engine whose back end revokes by certificate, not by serial (the xPKI Certifier API
    names a certificate by its SHA-1 id; ACME's revokeCert sends the certificate)."""

    def revoke_certificate(
        self,
        certificate: x509.Certificate,
        reason: x509.ReasonFlags,
        revoked_at: datetime.datetime,
    ) -> None: ...


def revoke_at_ca(
    engine: CAEngine,
    certificate: x509.Certificate,
    reason: x509.ReasonFlags,
    revoked_at: datetime.datetime,
) -> None:
    """Tell the CA, by certificate where the engine wants that, else by serial."""
    if isinstance(engine, CertificateRevokingEngine):
        engine.revoke_certificate(certificate, reason, revoked_at)
    else:
        engine.revoke(certificate.serial_number, reason, revoked_at)


def crl_signer(engine: CAEngine) -> CRLSigningEngine | None:
    """The engine as a CRL signer, or None when it cannot sign CRLs (it says so itself)."""
    if isinstance(engine, CRLSigningEngine) and engine.capabilities().supports_crl_signing:
        return engine
    return None
