"""Who is calling EST: an HTTP Basic user, a factory seed certificate, or a certificate we issued.

The TLS layer (API Gateway mutual TLS, or the dev front) proves the client holds the key of the
certificate it presented and passes it on as `requestContext.identity.clientCert`. What that
certificate may do is decided here, against the credential store and the inventory, so nothing
rests on a truststore alone. Every failure is a 401 carrying the Basic challenge.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certplane.auth import CredentialStore
from certplane.auth.seeds import seed_tenant
from certplane.enroll.est.media import headers_of
from certplane.errors import Unauthorized
from certplane.inventory import CertificateRecord, Inventory
from certplane.lifecycle import effective_status
from certplane.model import CertificateStatus, certificate_id

logger = logging.getLogger(__name__)
CHALLENGE = 'Basic realm="certplane EST"'


@dataclass(frozen=True)
class EstCaller:
    """An authenticated EST client: its tenant, its name for the audit trail, and, when it
    authenticated with a certificate we issued, that certificate's record."""

    tenant: str
    requester: str
    current: CertificateRecord | None = None


def client_certificate(event: Mapping[str, Any]) -> x509.Certificate | None:
    """The TLS client certificate API Gateway (or the dev front) put into the event."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    pem = (identity.get("clientCert") or {}).get("clientCertPem")
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(str(pem).encode())
    except ValueError:
        raise Unauthorized("unauthorized", "the client certificate is unreadable") from None


def _refuse(message: str) -> Unauthorized:
    logger.info("EST authentication refused: %s", message)
    return Unauthorized("unauthorized", message)


class EstAuthenticator:
    """Turns the credentials in a proxy event into an EstCaller, or refuses with a 401."""

    def __init__(self, credentials: CredentialStore, inventory: Inventory) -> None:
        self.credentials = credentials
        self.inventory = inventory

    def enrolling(self, event: Mapping[str, Any]) -> EstCaller:
        """simpleenroll and serverkeygen: HTTP Basic, else a seed from a bootstrap CA."""
        caller = self._basic(event)
        if caller is not None:
            return caller
        certificate = client_certificate(event)
        if certificate is None:
            raise _refuse("send HTTP Basic credentials or a bootstrap client certificate")
        return self._seed(certificate)

    def reenrolling(self, event: Mapping[str, Any]) -> EstCaller:
        """simplereenroll: the live certificate being renewed is the TLS client certificate."""
        basic = self._basic(event)
        certificate = client_certificate(event)
        if certificate is None:
            raise _refuse("re-enrollment needs the current certificate as TLS client certificate")
        current = self._current(certificate)
        if basic is not None and basic.tenant != current.tenant:
            raise _refuse("the Basic credentials and the client certificate disagree")
        return EstCaller(current.tenant, f"est-certificate:{current.certificate_id}", current)

    def optional(self, event: Mapping[str, Any]) -> EstCaller | None:
        """cacerts and csrattrs need no credentials (RFC 7030 §4.1.1, §4.5.1), but bad Basic
        credentials are still refused; a client certificate only helps choose the tenant."""
        caller = self._basic(event)
        if caller is not None:
            return caller
        certificate = client_certificate(event)
        if certificate is None:
            return None
        for identify in (self._seed, self._current_caller):
            try:
                return identify(certificate)
            except Unauthorized:
                continue
        return None

    # -- HTTP Basic -----------------------------------------------------------------------

    def _basic(self, event: Mapping[str, Any]) -> EstCaller | None:
        header = headers_of(event).get("authorization")
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise _refuse("EST accepts HTTP Basic credentials only")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _refuse("the Basic credentials are malformed") from None
        user, colon, password = decoded.partition(":")
        principal = self.credentials.authenticate_password(user, password) if colon else None
        if principal is None:
            raise _refuse("wrong EST user name or password")
        return EstCaller(principal.tenant, f"est-user:{principal.name}")

    # -- client certificates --------------------------------------------------------------

    def _seed(self, certificate: x509.Certificate) -> EstCaller:
        """A factory certificate directly issued by a bootstrap CA some tenant trusts."""
        try:
            tenant = seed_tenant(
                self.credentials,
                certificate,
                datetime.datetime.now(datetime.UTC),
                self.inventory.is_revoked,
            )
        except Unauthorized as error:
            raise _refuse(error.message) from None
        return EstCaller(tenant, f"est-seed:{certificate_id(certificate)}")

    def _current(self, certificate: x509.Certificate) -> CertificateRecord:
        """The inventory record of a certificate we issued, which must still be live."""
        record = self.inventory.record_of(certificate)
        if record is None:
            raise _refuse("the client certificate was not issued by this service")
        status = effective_status(record)
        if status != CertificateStatus.ISSUED.value:
            raise _refuse(f"the client certificate is {status}; enroll again instead")
        return record

    def _current_caller(self, certificate: x509.Certificate) -> EstCaller:
        record = self._current(certificate)
        return EstCaller(record.tenant, f"est-certificate:{record.certificate_id}", record)
