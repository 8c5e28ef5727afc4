"""Lint before sign: fast checks on what an engine is about to sign (Boulder's rule).

They catch a policy or engine bug before a certificate exists, whatever engine signs it.
pkilint runs over samples of every engine's output in the tests; these run on every request.
"""

from __future__ import annotations

import datetime

from cryptography import x509

from certbridge.interface import Capabilities, PermanentEngineError, SigningRequest

MAX_SERIAL_OCTETS = 20


def lint_signing_request(request: SigningRequest, capabilities: Capabilities) -> None:
    """Raise PermanentEngineError naming the first rule the request breaks."""
    serial = request.serial_number
    if serial <= 0 or (serial.bit_length() + 8) // 8 > MAX_SERIAL_OCTETS:
        raise PermanentEngineError("the serial number must be positive and at most 20 octets")
    if request.not_before >= request.not_after:
        raise PermanentEngineError("notBefore must be earlier than notAfter")
    if request.not_after > capabilities.ca_not_after:
        raise PermanentEngineError("the validity ends after the issuing CA's")
    now = datetime.datetime.now(datetime.UTC)
    if request.not_after <= now:
        raise PermanentEngineError("the certificate would already be expired")
    extensions = {extension.oid: extension.value for extension in request.extensions}
    if len(extensions) != len(request.extensions):
        raise PermanentEngineError("an extension appears twice")
    constraints = extensions.get(x509.BasicConstraints.oid)
    key_usage = extensions.get(x509.KeyUsage.oid)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise PermanentEngineError("engines issue end-entity certificates only")
    if isinstance(key_usage, x509.KeyUsage) and (key_usage.key_cert_sign or key_usage.crl_sign):
        raise PermanentEngineError("an end-entity key usage cannot sign certificates or CRLs")
    extended = extensions.get(x509.ExtendedKeyUsage.oid)
    if (
        isinstance(extended, x509.ExtendedKeyUsage)
        and isinstance(key_usage, x509.KeyUsage)
        and not (key_usage.digital_signature or key_usage.key_agreement)
    ):
        raise PermanentEngineError("TLS key usages need digitalSignature or keyAgreement")
    sans = extensions.get(x509.SubjectAlternativeName.oid)
    if len(request.subject) == 0 and not isinstance(sans, x509.SubjectAlternativeName):
        raise PermanentEngineError("a certificate needs a subject or a subjectAltName")
    if isinstance(sans, x509.SubjectAlternativeName):
        for name in sans.get_values_for_type(x509.DNSName):
            if not name or len(name) > 253 or ".." in name or name.startswith("."):
                raise PermanentEngineError(f"malformed DNS name {name!r}")
