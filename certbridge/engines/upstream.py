"""An existing xPKI back end as a CertBridge engine, reached through its Certifier API.

certplane becomes a client of the same API it serves to libCertifier devices: POST
/certificate with the device's CSR (base64 DER), `nodeAddress` = the subject CN policy
decided, `dnsNames`/`ipAddresses`/`emails` = its SANs, `validityDays`, and the configured
upstream `profileName`/`productId`; the reply's PKCS#7 (leaf, issuing CA, root) is read in
order and checked here — leaf key, CN, SANs, EKU, validity, chain up to the pinned root —
because a certificate policy did not approve must never be handed out. The upstream picks
the serial number (`assigns_serial_numbers`), its own validity (whole days, its clock) and
any extension its profile writes.

Authentication is one of the two xPKI token types. X509: a "seed" certificate and key the
upstream trusts for enrollment. SAT: a token the upstream's tenant issued. Only SAT can
revoke: an X509 token for /revoke must be signed by the certificate being revoked, whose key
only the device holds — so with X509 auth `supports_revocation` is False and revoke() raises
PermanentEngineError.

The xPKI API names certificates by SHA-1 of their DER, while CertBridge revokes by serial:
the engine remembers the certificate id of each serial it issued (a bounded in-memory index),
so revoke() works for certificates issued by this engine instance (this process). Anything
else is revoked with `revoke_certificate(certificate, …)` or `revoke_certificate_id` (the
inventory records both).

The xPKI API has no endpoint for the CA chain, so `chain_file` (issuing CA first, root last,
as the upstream's operators publish it) is required: capabilities() needs the CA's notAfter
before the first issuance. Its root is pinned; an issuing CA rotated under that root is
accepted and replaces the configured one in chain().
"""

from __future__ import annotations

import base64
import datetime
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from certbridge.engines.upstream_auth import AUTH_TYPES, SAT, SatTokens, SeedTokens, TokenSource
from certbridge.engines.upstream_checks import (
    VALIDITY_SLACK,
    certificate_id,
    chain_problems,
    conformance_problems,
    expected_signature_algorithm,
    extension_value,
    key_algorithm,
    load_chain_file,
)
from certbridge.engines.upstream_client import CertifierClient, UpstreamRefused
from certbridge.engines.upstream_pkcs7 import Pkcs7Error, certificates_from_pem
from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
)

logger = logging.getLogger(__name__)

ENGINE_TYPE = "certifier"
KNOWN_KEY_ALGORITHMS = (
    "P-256",
    "P-384",
    "P-521",
    "Ed25519",
    "RSA",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
)
# java.security.cert.CRLReason names, which the xPKI API takes as `revokeReason`.
REVOKE_REASONS: dict[x509.ReasonFlags, str] = {
    x509.ReasonFlags.unspecified: "UNSPECIFIED",
    x509.ReasonFlags.key_compromise: "KEY_COMPROMISE",
    x509.ReasonFlags.ca_compromise: "CA_COMPROMISE",
    x509.ReasonFlags.affiliation_changed: "AFFILIATION_CHANGED",
    x509.ReasonFlags.superseded: "SUPERSEDED",
    x509.ReasonFlags.cessation_of_operation: "CESSATION_OF_OPERATION",
    x509.ReasonFlags.certificate_hold: "CERTIFICATE_HOLD",
    x509.ReasonFlags.privilege_withdrawn: "PRIVILEGE_WITHDRAWN",
    x509.ReasonFlags.aa_compromise: "AA_COMPROMISE",
}


class UpstreamCertifierEngine:
    """A CA behind an xPKI-compatible Certifier API (another certplane, or an xPKI).

    Nothing is read or called at construction (a Lambda cold start must not fail on one
    CA): option shapes are checked now, files and secrets on first use.
    """

    def __init__(
        self,
        engine_id: str,
        base_url: str,
        chain_file: str,
        auth: str,
        ca_file: str | None = None,
        profile_name: str | None = None,
        product_id: str | None = None,
        certificate_lite: bool = False,
        source: str = "certplane",
        seed_certificate_file: str | None = None,
        seed_key_file: str | None = None,
        seed_key_passphrase_env: str | None = None,
        seed_key_passphrase_file: str | None = None,
        seed_key_passphrase_secret: str | None = None,
        sat_env: str | None = None,
        sat_file: str | None = None,
        sat_secret: str | None = None,
        subject_key_algorithms: Sequence[str] = ("P-256",),
        max_validity_days: int | None = None,
        max_requests_per_second: float | None = None,
        connect_timeout_seconds: float = 5.0,
        read_timeout_seconds: float = 30.0,
        revocation_index_size: int = 100_000,
    ) -> None:
        where = f"certifier engine {engine_id}"
        auth = auth.upper()
        if auth not in AUTH_TYPES:
            raise ValueError(f"{where}: auth must be one of {AUTH_TYPES}")
        tokens: TokenSource
        if auth == SAT:
            if seed_certificate_file or seed_key_file:
                raise ValueError(f"{where}: seed_* options belong to auth = 'X509'")
            tokens = SatTokens(sat_env, sat_file, sat_secret)
        else:
            if not (seed_certificate_file and seed_key_file):
                raise ValueError(
                    f"{where}: X509 auth needs seed_certificate_file and seed_key_file"
                )
            if sat_env or sat_file or sat_secret:
                raise ValueError(f"{where}: sat_* options belong to auth = 'SAT'")
            tokens = SeedTokens(
                seed_certificate_file,
                seed_key_file,
                seed_key_passphrase_env,
                seed_key_passphrase_file,
                seed_key_passphrase_secret,
            )
        unknown = set(subject_key_algorithms) - set(KNOWN_KEY_ALGORITHMS)
        if unknown or not subject_key_algorithms:
            raise ValueError(
                f"{where}: subject_key_algorithms must be among {KNOWN_KEY_ALGORITHMS}"
            )
        if product_id is not None and not all(c in "0123456789abcdefABCDEF" for c in product_id):
            raise ValueError(f"{where}: product_id is a hex string")
        if max_validity_days is not None and max_validity_days < 1:
            raise ValueError(f"{where}: max_validity_days must be at least 1")
        self._engine_id = engine_id
        self._client = CertifierClient(
            base_url,
            tokens,
            ca_file=ca_file,
            source=source,
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
        )
        self._auth = auth
        self._chain_file = chain_file
        self._fields: dict[str, Any] = {"profileName": profile_name, "productId": product_id}
        if certificate_lite:
            self._fields["certificateLite"] = "true"  # a string, as libCertifier sends it
        self._subject_key_algorithms = tuple(subject_key_algorithms)
        self._max_validity_days = max_validity_days
        self._max_requests_per_second = max_requests_per_second
        self._index_size = revocation_index_size
        self._lock = threading.Lock()
        self._chain: tuple[x509.Certificate, ...] | None = None
        self._signature_algorithm: str | None = None
        self._issued: OrderedDict[int, str] = OrderedDict()

    @property
    def engine_id(self) -> str:
        return self._engine_id

    @property
    def auth_type(self) -> str:
        return self._auth

    # -- CertBridge interface ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        chain = self.chain()
        ca_not_after = chain[0].not_valid_after_utc
        remaining = max(ca_not_after - datetime.datetime.now(datetime.UTC), datetime.timedelta(0))
        if self._max_validity_days is not None:
            remaining = min(remaining, datetime.timedelta(days=self._max_validity_days))
        return Capabilities(
            engine_type=ENGINE_TYPE,
            signing_algorithm=self._signature_algorithm or expected_signature_algorithm(chain[0]),
            subject_key_algorithms=self._subject_key_algorithms,
            max_validity=remaining,
            ca_not_after=ca_not_after,
            supports_revocation=self._auth == SAT,
            supports_crl_signing=False,  # the upstream publishes its own CRLs and OCSP
            max_requests_per_second=self._max_requests_per_second,
            assigns_serial_numbers=True,
        )

    def chain(self) -> tuple[x509.Certificate, ...]:
        with self._lock:
            if self._chain is None:
                self._chain = load_chain_file(self._chain_file)
            return self._chain

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        document = self.certificate_request(request)
        reply = self._client.post("/certificate", document)
        try:
            certificates = certificates_from_pem(str(reply.get("certificateChain", "")))
        except Pkcs7Error as error:
            raise PermanentEngineError(f"the upstream's certificateChain: {error}") from None
        leaf = certificates[0]
        issued_id = certificate_id(leaf)
        problems = chain_problems(certificates, self.chain()[-1])
        problems += conformance_problems(request, leaf)
        if str(reply.get("certificateId", "")).lower() != issued_id:
            problems.append(f"certificateId {reply.get('certificateId')!r} is not its SHA-1")
        if problems:
            raise PermanentEngineError(
                f"the upstream issued certificate {issued_id} (serial {leaf.serial_number:x}), "
                f"which differs from what policy approved: {'; '.join(problems)}; "
                f"{self._withdraw(issued_id)}"
            )
        with self._lock:
            self._chain = certificates[1:]
            self._signature_algorithm = leaf.signature_algorithm_oid._name
            self._issued[leaf.serial_number] = issued_id
            while len(self._issued) > self._index_size:
                self._issued.popitem(last=False)
        return IssuedCertificate(certificate=leaf, chain=certificates[1:])

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """The upstream records its own revocation time; `revoked_at` is the inventory's."""
        self._require_revocation()
        with self._lock:
            issued_id = self._issued.get(serial_number)
        if issued_id is None:
            raise PermanentEngineError(
                f"serial {serial_number:x} was not issued through this instance of engine "
                f"{self._engine_id}: the xPKI API revokes by certificate id, so revoke it with "
                "revoke_certificate / revoke_certificate_id (the inventory records the "
                "certificate and its id) or at the upstream"
            )
        self.revoke_certificate_id(issued_id, reason)

    # -- beyond the interface ---------------------------------------------------------------

    def revoke_certificate(
        self,
        certificate: x509.Certificate,
        reason: x509.ReasonFlags,
        revoked_at: datetime.datetime,
    ) -> None:
        """Revoke by the certificate itself: what a caller holding the inventory record can
        do for any certificate, whichever process issued it."""
        self.revoke_certificate_id(certificate_id(certificate), reason)

    def revoke_certificate_id(self, issued_id: str, reason: x509.ReasonFlags) -> None:
        """POST /revoke; a certificate the upstream already reports REVOKED counts as done."""
        self._require_revocation()
        if reason not in REVOKE_REASONS:
            raise PermanentEngineError(f"the xPKI API has no revocation reason {reason.value}")
        document = {"revokeReason": REVOKE_REASONS[reason], "certificateId": issued_id.lower()}
        try:
            self._client.post("/revoke", document)
        except UpstreamRefused:
            if self._status_or_none(issued_id) != "REVOKED":
                raise

    def certificate_status(self, issued_id: str) -> str:
        """What the upstream's status endpoint says: GOOD, REVOKED or UNKNOWN."""
        return self._client.status(issued_id.lower())

    def certificate_request(self, request: SigningRequest) -> dict[str, Any]:
        """The POST /certificate body for `request`, or PermanentEngineError if the xPKI API
        cannot carry what policy decided."""
        if request.csr_der is None:
            raise PermanentEngineError(
                "the xPKI API issues only for a CSR and this request has none (a same-key "
                "renewal must send a new CSR to a certifier route)"
            )
        try:
            csr_key = x509.load_der_x509_csr(request.csr_der).public_key()
        except (ValueError, UnsupportedAlgorithm) as error:
            raise PermanentEngineError(f"the CSR cannot be read: {error}") from None
        if csr_key != request.public_key:
            raise PermanentEngineError("the CSR is for another key than the one policy approved")
        algorithm = key_algorithm(request.public_key)
        if algorithm not in self._subject_key_algorithms:
            raise PermanentEngineError(
                f"engine {self._engine_id} is configured for {self._subject_key_algorithms} "
                f"subject keys, not {algorithm}"
            )
        attributes = [attribute for rdn in request.subject.rdns for attribute in rdn]
        if any(a.oid != NameOID.COMMON_NAME for a in attributes) or len(attributes) > 1:
            raise PermanentEngineError(
                "the xPKI API names a device only by its CN (nodeAddress); the subject "
                f"{request.subject.rfc4514_string()!r} would not be reproduced"
            )
        document: dict[str, Any] = {"csr": _b64(request.csr_der)}
        if attributes:
            document["nodeAddress"] = str(attributes[0].value)
        document.update({key: value for key, value in self._fields.items() if value})
        sans = extension_value(request.extensions, x509.SubjectAlternativeName)
        for name in sans or ():
            if isinstance(name, x509.DNSName):
                document.setdefault("dnsNames", []).append(name.value)
            elif isinstance(name, x509.IPAddress) and not hasattr(name.value, "prefixlen"):
                document.setdefault("ipAddresses", []).append(str(name.value))
            elif isinstance(name, x509.RFC822Name):
                document.setdefault("emails", []).append(name.value)
            else:
                raise PermanentEngineError(
                    f"the xPKI API carries only DNS, IP and email names, not {name!r}"
                )
        remaining = request.not_after - datetime.datetime.now(datetime.UTC)
        days = (remaining + VALIDITY_SLACK) // datetime.timedelta(days=1)
        if days < 1:
            raise PermanentEngineError(
                "the xPKI API sets validity in whole days; this request is for less than a day"
            )
        document["validityDays"] = days
        return document

    # -- checks -------------------------------------------------------------------------------

    def _require_revocation(self) -> None:
        if self._auth != SAT:
            raise PermanentEngineError(
                f"engine {self._engine_id} authenticates with an X509 seed token and cannot "
                "revoke: the xPKI API accepts an X509 token on /revoke only when it is signed "
                "by the certificate being revoked, whose key only the device holds. Configure "
                "auth = 'SAT', or let the device revoke itself."
            )

    def _withdraw(self, issued_id: str) -> str:
        """Revoke an unwanted certificate at the upstream when we can; say what happened."""
        if self._auth != SAT:
            return "it could not be revoked (X509 auth): revoke it at the upstream"
        try:
            self.revoke_certificate_id(issued_id, x509.ReasonFlags.unspecified)
        except Exception as error:  # a failure here must not hide the refusal itself
            return f"revoking it at the upstream failed ({error}): revoke it there"
        return "it was revoked at the upstream"

    def _status_or_none(self, issued_id: str) -> str | None:
        try:
            return self.certificate_status(issued_id)
        except Exception:  # the refusal being handled is the error worth reporting
            return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
