"""Factory "seed" certificates: the bootstrap identity a device enrolls with.

A seed is trusted when a bootstrap CA that some tenant registered signed it directly (found by
the seed's authority key identifier), both are within validity, and the seed is not a CA. The
tenant that trusts the CA is the tenant the device enrolls into. Shared by every door.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from certplane.auth.credentials import CredentialStore
from certplane.errors import Unauthorized

_UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension)


def _refuse(message: str) -> Unauthorized:
    return Unauthorized("untrusted_certificate", message)


def _extension(certificate: x509.Certificate, kind: type) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except _UNREADABLE:
        raise _refuse("the certificate's extensions cannot be read") from None


def seed_tenant(
    credentials: CredentialStore,
    seed: x509.Certificate,
    now: datetime.datetime,
    revoked: Callable[[x509.Certificate], bool] = lambda _: False,
) -> str:
    """The tenant whose bootstrap CA directly signed `seed`; Unauthorized otherwise.

    `revoked` answers for seeds whose status we know (a seed that is a certificate from our
    own inventory); external bootstrap CAs publish no status we consult.
    """
    aki = _extension(seed, x509.AuthorityKeyIdentifier)
    constraints = _extension(seed, x509.BasicConstraints)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or aki.key_identifier is None:
        raise _refuse("the seed names no issuer key identifier (AKI)")
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise _refuse("a CA certificate cannot enroll")
    found = credentials.bootstrap_ca(aki.key_identifier.hex())
    if found is None:
        raise _refuse("the seed's issuer is not a trusted bootstrap CA")
    tenant, ca = found
    try:
        seed.verify_directly_issued_by(ca)
    except (InvalidSignature, *_UNREADABLE):
        raise _refuse("the seed is not signed by the trusted bootstrap CA") from None
    for certificate, what in ((seed, "seed"), (ca, "bootstrap CA")):
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise _refuse(f"the {what} certificate is not within its validity")
    if revoked(seed):
        raise Unauthorized("certificate_revoked", "the seed certificate has been revoked")
    return tenant
