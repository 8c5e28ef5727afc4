"""Who is calling the Certifier API: checks an xPKI bearer token and binds it to a tenant.

X509 tokens: the signature (with the key of the certificate in the token), the certificate's
validity, the timestamp (± MAX_CLOCK_SKEW) and the nonce (once per NONCE_TTL). For enrollment
the certificate is a factory seed that must be signed directly by a bootstrap CA some tenant
trusts; for renew and revoke it is the device certificate being acted on, which must be in the
inventory and live. SAT tokens: an opaque token the tenant issued, found by its hash.

Seeds are not in our inventory, so their revocation is checked only where we can: a seed that
is a certificate we issued and revoked is refused. There is no CRL or OCSP check against
external bootstrap CAs; a tenant withdraws a compromised factory CA by removing its trust.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.auth import CredentialKind, CredentialStore
from certplane.auth.seeds import seed_tenant
from certplane.enroll.certifier.lookup import is_live
from certplane.enroll.certifier.tokens import SatToken, X509Token, parse_bearer
from certplane.errors import CertplaneError, NotFound, Unauthorized
from certplane.inventory import CertificateRecord, Inventory
from certplane.model import certificate_id

MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)
# A token is accepted while |now - timestamp| <= skew, a window 2x skew wide: a nonce must be
# remembered at least that long after its first use.
NONCE_TTL = 2 * MAX_CLOCK_SKEW
_E = TypeVar("_E", bound=x509.ExtensionType)
_CERTIFICATE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


class Forbidden(CertplaneError):
    """Authenticated, but not for this certificate."""

    status = 403


@dataclass(frozen=True)
class DeviceCaller:
    """An authenticated device (or SAT holder) and the tenant it acts for."""

    tenant: str
    requester: str
    auth_type: str
    token_certificate_id: str | None = None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _extension(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except _CERTIFICATE_ERRORS:
        raise Unauthorized(
            "malformed_token", "the certificate's extensions cannot be read"
        ) from None


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


class CertifierAuthenticator:
    """Turns an Authorization header into a DeviceCaller, or raises Unauthorized/Forbidden."""

    def __init__(
        self,
        credentials: CredentialStore,
        inventory: Inventory,
        clock: Callable[[], datetime.datetime] = _now,
        max_skew: datetime.timedelta = MAX_CLOCK_SKEW,
    ) -> None:
        self.credentials = credentials
        self.inventory = inventory
        self.clock = clock
        self.max_skew = max_skew
        self.nonce_ttl = max(NONCE_TTL, 2 * max_skew)

    # -- the two questions the routes ask ---------------------------------------------------

    def enrollment_caller(self, authorization: str | None) -> DeviceCaller:
        """POST /certificate: a seed chaining to a tenant's bootstrap CA, or a SAT."""
        token = parse_bearer(authorization)
        if isinstance(token, SatToken):
            return self._sat_caller(token)
        certificate = self._verified_certificate(token)
        tenant = seed_tenant(self.credentials, certificate, self.clock(), self.inventory.is_revoked)
        seed_id = certificate_id(certificate)
        self._claim(tenant, f"certifier-x509#{seed_id}", token)
        return DeviceCaller(tenant, f"certifier:x509:{seed_id}", "X509", seed_id)

    def certificate_caller(
        self, authorization: str | None, reference: str
    ) -> tuple[DeviceCaller, CertificateRecord]:
        """POST /renew and /revoke: the holder of certificate `reference` (or a SAT)."""
        token = parse_bearer(authorization)
        if isinstance(token, SatToken):
            caller = self._sat_caller(token)
            return caller, self.inventory.find(caller.tenant, reference)
        certificate = self._verified_certificate(token)
        token_id = certificate_id(certificate)
        if token_id != reference.lower():
            raise Forbidden(
                "certificate_mismatch",
                "the token must be signed by the certificate named by certificateId",
            )
        record = self.inventory.locate(token_id)
        if record is None:
            raise NotFound("certificate_not_found", f"no certificate {token_id} was issued here")
        stored = x509.load_pem_x509_certificate((record.certificate_pem or "").encode())
        if _der(stored) != _der(certificate):  # SHA-1 alone is not collision resistant
            raise Forbidden("certificate_mismatch", "the token certificate is not the one issued")
        if not is_live(record, self.clock()):
            raise Unauthorized(
                "certificate_not_live",
                f"certificate {token_id} is {record.status} or expired and cannot authenticate",
            )
        self._claim(record.tenant, f"certifier-x509#{token_id}", token)
        return DeviceCaller(record.tenant, f"certifier:x509:{token_id}", "X509", token_id), record

    # -- checks ---------------------------------------------------------------------------

    def _check_freshness(self, token: X509Token | SatToken) -> None:
        drift = abs(self.clock() - token.issued_at)
        if drift > self.max_skew:
            raise Unauthorized(
                "stale_token",
                f"the token timestamp is {int(drift.total_seconds())} s from the server clock "
                f"(at most {int(self.max_skew.total_seconds())} s allowed)",
            )

    def _claim(self, tenant: str, scope: str, token: X509Token | SatToken) -> None:
        if not self.credentials.claim_nonce(tenant, scope, token.nonce, self.nonce_ttl):
            raise Unauthorized("replayed_nonce", "this token's nonce was already used")

    def _sat_caller(self, token: SatToken) -> DeviceCaller:
        self._check_freshness(token)
        principal = self.credentials.authenticate_token(token.token, CredentialKind.SAT)
        if principal is None:
            raise Unauthorized("unknown_token", "the SAT token is not known")
        self._claim(principal.tenant, f"certifier-sat#{principal.name}", token)
        return DeviceCaller(principal.tenant, f"certifier:sat:{principal.name}", "SAT")

    def _verified_certificate(self, token: X509Token) -> x509.Certificate:
        """The token's certificate once its signature, validity and timestamp check out."""
        self._check_freshness(token)
        message, signature = token.signed_message, token.signature_der
        try:
            certificate = x509.load_der_x509_certificate(token.certificate_der)
            key = certificate.public_key()
            not_before = certificate.not_valid_before_utc
            not_after = certificate.not_valid_after_utc
        except _CERTIFICATE_ERRORS:
            raise Unauthorized("malformed_token", "the token certificate cannot be read") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise Unauthorized("invalid_signature", "X509 tokens are signed with ECDSA keys")
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Unauthorized("invalid_signature", "the token signature does not verify") from None
        now = self.clock()
        if now < not_before - self.max_skew:
            raise Unauthorized(
                "certificate_not_yet_valid", "the token certificate is not valid yet"
            )
        if now > not_after:
            raise Unauthorized("certificate_expired", "the token certificate has expired")
        return certificate
