"""What the ACME engine checks before ordering and after downloading, without the network.

Before: a public ACME CA certifies only DNS names and IP addresses, takes them from the CSR
it is finalized with, and signs only RSA and NIST-curve keys; a request it must refuse is
refused here, before an order spends the account's rate limit. After: the CA decides the
subject, extensions and (mostly) validity, so what is checked is what must hold whatever it
decided — the key, the names, a chain that ends at a root this deployment trusts.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from acme import messages
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certbridge.interface import PermanentEngineError, SigningRequest, TransientEngineError

# What Let's Encrypt, ZeroSSL and Sectigo accept as subscriber keys.
SUBJECT_KEY_ALGORITHMS = ("P-256", "P-384", "RSA")
RSA_KEY_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True, order=True)
class Identifier:
    """One ACME identifier (RFC 8555 §9.7.7 "dns", RFC 8738 "ip")."""

    type: str
    value: str

    @property
    def wildcard(self) -> bool:
        return self.value.startswith("*.")

    def message(self) -> messages.Identifier:
        kind = messages.IDENTIFIER_FQDN if self.type == "dns" else messages.IDENTIFIER_IP
        return messages.Identifier(typ=kind, value=self.value)


def _identifier(name: x509.GeneralName) -> Identifier:
    if isinstance(name, x509.DNSName):
        return Identifier("dns", name.value.lower().rstrip("."))
    if isinstance(name, x509.IPAddress) and not hasattr(name.value, "prefixlen"):
        return Identifier("ip", str(name.value))
    raise PermanentEngineError(
        f"a public ACME CA certifies only DNS names and IP addresses, not {name!r}"
    )


def identifiers_of(names: Sequence[x509.GeneralName]) -> tuple[Identifier, ...]:
    return tuple(sorted({_identifier(name) for name in names}))


def request_identifiers(request: SigningRequest) -> tuple[Identifier, ...]:
    """The request's SANs as ACME identifiers; PermanentEngineError for anything else."""
    for extension in request.extensions:
        if isinstance(extension.value, x509.SubjectAlternativeName):
            identifiers = identifiers_of(list(extension.value))
            if identifiers:
                return identifiers
    raise PermanentEngineError(
        "an ACME CA certifies names: the request has no DNS or IP subjectAltName"
    )


def subject_key_algorithm(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "P-256", "secp384r1": "P-384"}.get(key.curve.name, key.curve.name)
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA" if key.key_size in RSA_KEY_SIZES else f"RSA-{key.key_size}"
    return type(key).__name__


def _common_names(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _sans(extensions: x509.Extensions) -> list[x509.GeneralName]:
    try:
        return list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _cn_is_a_name(common_names: list[str], identifiers: Sequence[Identifier]) -> bool:
    values = {identifier.value for identifier in identifiers}
    return all(cn.lower() in values for cn in common_names)


def checked_csr(
    request: SigningRequest, identifiers: Sequence[Identifier]
) -> x509.CertificateSigningRequest:
    """The device's CSR, if a public CA would finalize an order for `identifiers` with it.

    The CA takes the names from the CSR, so the CSR must name exactly what policy approved;
    Boulder also counts a CN among the names, so a CN must be one of them.
    """
    if request.csr_der is None:
        raise PermanentEngineError(
            "an ACME CA signs only CSRs and this request has none (a renewal for the same key "
            "must send a new CSR to an ACME route)"
        )
    try:
        csr = x509.load_der_x509_csr(request.csr_der)
        csr_key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as error:
        raise PermanentEngineError(f"the CSR cannot be read: {error}") from None
    if not signed:
        raise PermanentEngineError("the CSR's signature does not verify")
    if csr_key != request.public_key:
        raise PermanentEngineError("the CSR is for another key than the one policy approved")
    algorithm = subject_key_algorithm(request.public_key)
    if algorithm not in SUBJECT_KEY_ALGORITHMS:
        raise PermanentEngineError(f"public ACME CAs do not certify {algorithm} keys")
    try:
        csr_identifiers = identifiers_of(_sans(csr.extensions))
    except PermanentEngineError as error:
        raise PermanentEngineError(f"the CSR: {error}") from None
    if csr_identifiers != tuple(identifiers):
        raise PermanentEngineError(
            "an ACME CA takes the names from the CSR, and the CSR names "
            f"{[i.value for i in csr_identifiers]} where policy approved "
            f"{[i.value for i in identifiers]}"
        )
    if not _cn_is_a_name(_common_names(csr.subject), identifiers):
        raise PermanentEngineError(
            "public ACME CAs accept a CSR common name only if it is one of its DNS or IP names"
        )
    return csr


# -- the chain --------------------------------------------------------------------------------


def load_roots(roots_file: str | None, roots_pem: str | None) -> tuple[x509.Certificate, ...]:
    """The roots an issued chain must end at, most preferred first."""
    if bool(roots_file) == bool(roots_pem):
        raise ValueError("configure the trusted roots: roots_file or roots_pem (one of them)")
    try:
        data = Path(roots_file).read_bytes() if roots_file else str(roots_pem).encode()
        roots = tuple(x509.load_pem_x509_certificates(data))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the trusted roots: {error}") from None
    for root in roots:
        if root.issuer != root.subject:
            raise ValueError(f"{root.subject.rfc4514_string()} is not a self-issued root")
    return roots


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a.subject == b.subject and a.public_key() == b.public_key()


def anchored_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
) -> tuple[int, tuple[x509.Certificate, ...]] | None:
    """(index of the root, chain issuing-first ending at that root) or None.

    A CA may send a root (or a cross-signed copy of one) inside its chain: the chain is cut
    there and the trusted root itself ends it.
    """
    path = [leaf, *intermediates]
    for position, certificate in enumerate(path):
        for index, root in enumerate(roots):
            if position and _same_key(certificate, root):
                chain = (*path[1:position], root)
            elif _issued_by(certificate, root):
                chain = (*path[1 : position + 1], root)
            else:
                continue
            links = [leaf, *chain]
            if all(_issued_by(child, parent) for child, parent in itertools.pairwise(links)):
                return index, chain
    return None


def anchored_ca_chain(
    cas: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """A configured chain (issuing CA first, its root optional) ending at a trusted root."""
    if not cas:
        raise ValueError("the chain is empty")
    for root in roots:
        if cas[-1] == root:
            chain = tuple(cas)
        elif _issued_by(cas[-1], root):
            chain = (*cas, root)
        else:
            continue
        if all(_issued_by(child, parent) for child, parent in itertools.pairwise(chain)):
            return chain
    raise ValueError("the chain does not end at a configured root")


def split_pem_chain(text: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """application/pem-certificate-chain: the leaf, then the certificates that certify it."""
    certificates = x509.load_pem_x509_certificates(text.encode())
    return certificates[0], certificates[1:]


def preferred_chain(
    fullchains: Sequence[str], roots: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The leaf and the offered chain (default first, then RFC 8555 §7.4.2 alternates) ending
    at the most preferred trusted root. When none reaches one, the roots configured are out
    of date (the CA moved to a new hierarchy): TransientEngineError, so the route fails over
    and the "CA Unavailable" event reaches someone who can update them."""
    best: tuple[int, x509.Certificate, tuple[x509.Certificate, ...]] | None = None
    leaf: x509.Certificate | None = None
    for text in fullchains:
        leaf, intermediates = split_pem_chain(text)
        anchored = anchored_chain(leaf, intermediates, roots)
        if anchored is not None and (best is None or anchored[0] < best[0]):
            best = (anchored[0], leaf, anchored[1])
    if best is None:
        serial = f" (serial {leaf.serial_number:x})" if leaf is not None else ""
        raise TransientEngineError(
            f"no chain the CA offered for the certificate{serial} ends at a configured root"
        )
    return best[1], best[2]


# -- what came back ---------------------------------------------------------------------------


def content_problems(
    request: SigningRequest,
    certificate: x509.Certificate,
    identifiers: Sequence[Identifier],
    exact_validity: bool,
    validity_slack: datetime.timedelta,
) -> list[str]:
    """How the certificate differs from what must hold whatever the CA decided."""
    problems = []
    if certificate.public_key() != request.public_key:
        problems.append("another public key")
    try:
        names = identifiers_of(_sans(certificate.extensions))
    except PermanentEngineError:
        names = ()
    if names != tuple(identifiers):
        problems.append(f"names {[i.value for i in names]}")
    if not _cn_is_a_name(_common_names(certificate.subject), identifiers):
        problems.append(f"a common name outside its names ({certificate.subject.rfc4514_string()})")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            problems.append("CA:TRUE")
    except x509.ExtensionNotFound:
        pass
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if exact_validity and (not_before, not_after) != (request.not_before, request.not_after):
        problems.append(f"validity {not_before.isoformat()} to {not_after.isoformat()}")
    elif not exact_validity and not_after > request.not_after + validity_slack:
        problems.append(
            f"notAfter {not_after.isoformat()}, later than the approved "
            f"{request.not_after.isoformat()}"
        )
    return problems
