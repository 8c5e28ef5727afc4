"""Delegated OCSP signing certificates (RFC 6960 §4.2.2.2), one per issuing CA.

The CA key signs only certificates and CRLs; OCSP responses are signed by a short-lived
responder certificate the CA engine issues (EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck, so
clients need not check the responder's own status). Its key stays with the responder, in a
file of mode 0600 (under the dev home for `certplane dev`), and it is replaced before expiry.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge import EngineRouter, SigningRequest
from certplane.config import Settings
from certplane.model import new_serial_number

OCSP_DIR_ENV = "CERTPLANE_OCSP_DIR"
BACKDATE = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class OcspSigner:
    """A responder certificate and its key, for one issuing CA."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def digest(self) -> hashes.SHA256 | None:
        return hashes.SHA256() if isinstance(self.key, ec.EllipticCurvePrivateKey) else None


def _new_key(issuing: x509.Certificate) -> CertificateIssuerPrivateKeyTypes:
    """P-256, or ML-DSA-65 under an ML-DSA CA (no weaker than the CA it answers for)."""
    if isinstance(issuing.public_key(), ec.EllipticCurvePublicKey):
        return ec.generate_private_key(ec.SECP256R1())
    return mldsa.MLDSA65PrivateKey.generate()


def _write_private(path: Path, data: bytes) -> None:
    staging = path.with_suffix(".tmp")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(path)


class OcspSigners:
    """Loads, issues and renews each CA's responder certificate."""

    def __init__(
        self,
        settings: Settings,
        router: EngineRouter,
        directory: Path,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.router = router
        self.directory = directory
        self.clock = clock
        self._cache: dict[str, OcspSigner] = {}
        self._lock = threading.Lock()

    def for_ca(self, ca_id: str) -> OcspSigner:
        with self._lock:
            signer = self._cache.get(ca_id) or self._load(ca_id)
            if signer is None or self._renew_due(signer):
                signer = self._issue(ca_id)
            self._cache[ca_id] = signer
            return signer

    def _renew_due(self, signer: OcspSigner) -> bool:
        renew = datetime.timedelta(days=self.settings.status.ocsp_signer_renew_days)
        return signer.certificate.not_valid_after_utc - self.clock() <= renew

    def _paths(self, ca_id: str) -> tuple[Path, Path]:
        folder = self.directory / ca_id
        return folder / "ocsp-signer.pem", folder / "ocsp-signer.key"

    def _load(self, ca_id: str) -> OcspSigner | None:
        cert_path, key_path = self._paths(ca_id)
        if not (cert_path.exists() and key_path.exists()):
            return None
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        issuing = self.router.engine(ca_id).chain()[0]
        if certificate.issuer != issuing.subject or key.public_key() != certificate.public_key():
            return None  # the CA was replaced: issue a new responder certificate
        return OcspSigner(certificate, key)  # type: ignore[arg-type]

    def _issue(self, ca_id: str) -> OcspSigner:
        engine = self.router.engine(ca_id)
        issuing = engine.chain()[0]
        key = _new_key(issuing)
        now = self.clock().replace(microsecond=0)
        not_after = min(
            now + datetime.timedelta(days=self.settings.status.ocsp_signer_days),
            issuing.not_valid_after_utc,
        )
        organization = issuing.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(value.value))
            for value in organization[:1]
        ]
        subject = x509.Name(
            [*attributes, x509.NameAttribute(NameOID.COMMON_NAME, f"{ca_id} OCSP Responder")]
        )
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        public_key = key.public_key()
        request = SigningRequest(
            serial_number=new_serial_number(),
            public_key=public_key,
            subject=subject,
            not_before=now - BACKDATE,
            not_after=not_after,
            extensions=(
                x509.Extension(x509.KeyUsage.oid, True, usage),
                x509.Extension(
                    x509.ExtendedKeyUsage.oid,
                    False,
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                ),
                x509.Extension(x509.OCSPNoCheck.oid, False, x509.OCSPNoCheck()),
                x509.Extension(
                    x509.SubjectKeyIdentifier.oid,
                    False,
                    x509.SubjectKeyIdentifier.from_public_key(public_key),
                ),
            ),
        )
        certificate = engine.issue(request).certificate
        cert_path, key_path = self._paths(ca_id)
        cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_path, pem)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return OcspSigner(certificate, key)
