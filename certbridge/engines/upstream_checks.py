"""What the upstream Certifier engine checks: its chain file, and every certificate it gets.

The upstream is another authority with its own policy, so what it returns is compared with
what certplane's policy approved before anyone sees it: the leaf's key, CN, SANs, EKU, that it
is no CA, its validity window (give or take the whole-day rounding of `validityDays`), and a
chain that links up to the root pinned by the configured chain file.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from certbridge.interface import PermanentEngineError, SigningRequest

# validityDays is whole days counted on the upstream's clock: a request is rounded down to
# whole days after this slack, and what comes back may end this much (twice, for the
# clocks) after the notAfter policy approved, never more.
VALIDITY_SLACK = datetime.timedelta(minutes=10)
_EC_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_EC_SIGNATURES = {
    "secp256r1": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    "secp384r1": SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    "secp521r1": SignatureAlgorithmOID.ECDSA_WITH_SHA512,
}


def certificate_id(certificate: x509.Certificate) -> str:
    """The xPKI certificate id: lowercase hex SHA-1 of the DER."""
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def key_algorithm(public_key: Any) -> str:
    """P-256, RSA, ML-DSA-65… (the names of certplane profiles)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_NAMES.get(public_key.curve.name, public_key.curve.name)
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    for level in ("44", "65", "87"):
        if isinstance(public_key, getattr(mldsa, f"MLDSA{level}PublicKey")):
            return f"ML-DSA-{level}"
    return type(public_key).__name__


def expected_signature_algorithm(issuing: x509.Certificate) -> str:
    """What the issuing CA's key most likely signs with, until a leaf shows what it does."""
    key = issuing.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        oid = _EC_SIGNATURES.get(key.curve.name, SignatureAlgorithmOID.ECDSA_WITH_SHA256)
    elif isinstance(key, rsa.RSAPublicKey):
        oid = SignatureAlgorithmOID.RSA_WITH_SHA256
    elif isinstance(key, ed25519.Ed25519PublicKey):
        oid = SignatureAlgorithmOID.ED25519
    else:
        return key_algorithm(key)  # ML-DSA-65 signs as "ML-DSA-65"
    return oid._name


def _verifies(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


def load_chain_file(chain_file: str) -> tuple[x509.Certificate, ...]:
    """Issuing CA first, root (self-signed) last, each certificate issued by the next."""
    try:
        chain = tuple(x509.load_pem_x509_certificates(Path(chain_file).read_bytes()))
    except (OSError, ValueError) as error:
        raise PermanentEngineError(
            f"cannot read the upstream chain {chain_file}: {error}"
        ) from None
    if not chain:
        raise PermanentEngineError(f"{chain_file} holds no PEM certificates")
    links = [*itertools.pairwise(chain), (chain[-1], chain[-1])]
    if not all(_verifies(child, parent) for child, parent in links):
        raise PermanentEngineError(
            f"{chain_file} must hold the upstream's issuing CA first and its self-signed root "
            "last, each certificate issued by the next"
        )
    return chain


def extension_value(extensions: Any, kind: type[x509.ExtensionType]) -> Any:
    """The value of the first extension of `kind` (in a request's tuple or a certificate)."""
    for extension in extensions:
        if isinstance(extension.value, kind):
            return extension.value
    return None


def _common_names(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _san_key(name: x509.GeneralName) -> tuple[str, str]:
    if isinstance(name, x509.DNSName):
        return ("DNS", name.value.lower())
    if isinstance(name, x509.IPAddress):
        return ("IP", str(name.value))
    if isinstance(name, x509.RFC822Name):
        return ("email", name.value)
    return (type(name).__name__, str(name.value))


def chain_problems(
    certificates: Sequence[x509.Certificate], pinned_root: x509.Certificate
) -> list[str]:
    """The reply must link leaf → … → the pinned root (the root of chain_file)."""
    if len(certificates) < 2:
        return ["the reply holds no CA certificates"]
    for child, parent in itertools.pairwise(certificates):
        if not _verifies(child, parent):
            return [f"{child.subject.rfc4514_string()!r} is not issued by the next certificate"]
    if certificates[-1] != pinned_root:
        return [
            f"the chain ends at {certificates[-1].subject.rfc4514_string()!r}, not the "
            f"configured root {pinned_root.subject.rfc4514_string()!r}"
        ]
    return []


def conformance_problems(request: SigningRequest, leaf: x509.Certificate) -> list[str]:
    """How the upstream's leaf differs from what policy approved (empty when it conforms).

    Checked: key, CN, SANs, EKU, not a CA, validity within the approved window (give or
    take the whole-day rounding). The upstream's own choices — serial, other extensions,
    attributes its profile adds to the subject — are its business.
    """
    problems = []
    if leaf.public_key() != request.public_key:
        problems.append("another public key")
    if _common_names(leaf.subject) != _common_names(request.subject):
        problems.append(f"subject {leaf.subject.rfc4514_string()!r}")
    try:
        extensions = list(leaf.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as error:
        return [*problems, f"unreadable extensions ({error})"]
    wanted_sans = extension_value(request.extensions, x509.SubjectAlternativeName) or []
    got_sans = extension_value(extensions, x509.SubjectAlternativeName) or []
    if {_san_key(n) for n in got_sans} != {_san_key(n) for n in wanted_sans}:
        problems.append(f"subjectAltName {sorted(_san_key(n) for n in got_sans)}")
    wanted_eku = extension_value(request.extensions, x509.ExtendedKeyUsage)
    got_eku = extension_value(extensions, x509.ExtendedKeyUsage)
    if wanted_eku is not None and (got_eku is None or set(got_eku) != set(wanted_eku)):
        problems.append(f"extendedKeyUsage {[o._name for o in got_eku or ()]}")
    constraints = extension_value(extensions, x509.BasicConstraints)
    key_usage = extension_value(extensions, x509.KeyUsage)
    if (constraints is not None and constraints.ca) or (
        key_usage is not None and key_usage.key_cert_sign
    ):
        problems.append("a CA certificate")
    if leaf.not_valid_after_utc > request.not_after + 2 * VALIDITY_SLACK:
        problems.append(f"notAfter {leaf.not_valid_after_utc.isoformat()} (too late)")
    if leaf.not_valid_before_utc > datetime.datetime.now(datetime.UTC) + VALIDITY_SLACK:
        problems.append(f"notBefore {leaf.not_valid_before_utc.isoformat()} (in the future)")
    return problems
