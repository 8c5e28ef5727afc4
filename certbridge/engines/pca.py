"""AWS Private CA as a CertBridge engine: the CA key stays in PCA, we send what policy decided.

PCA signs only CSRs, so the requester's CSR (proof of possession, made by the key holder) is
passed through, and everything policy decided (subject, SANs, key usage, EKU, validity) goes
in the IssueCertificate request itself: an *_APIPassthrough template, the ApiPassthrough
structure and an ABSOLUTE Validity. What comes back is checked in our own code — signature
against the CA chain, the public key, and (unless turned off for an emulator) the content —
because a certificate policy did not approve must never be handed out.

PCA chooses the serial number itself; the capabilities say so (`assigns_serial_numbers`).
Its request quotas are low, so throttling, 5xx and connection errors are retried with
jittered exponential backoff before the router sees a TransientEngineError.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from certbridge.aws_session import engine_client
from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)

GENERAL_PURPOSE = "GENERAL_PURPOSE"
SHORT_LIVED = "SHORT_LIVED_CERTIFICATE"
USAGE_MODES = (GENERAL_PURPOSE, SHORT_LIVED)
SHORT_LIVED_MAX_VALIDITY = datetime.timedelta(days=7)  # PCA's limit for SHORT_LIVED CAs
# The default IssueCertificate quota in many regions; check Service Quotas for yours.
DEFAULT_MAX_REQUESTS_PER_SECOND = 25.0
SUBJECT_KEY_ALGORITHMS = ("P-256", "P-384", "P-521", "RSA")
_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CA_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):acm-pca:(?P<region>[a-z0-9-]+):\d{12}:"
    r"certificate-authority/[0-9a-fA-F-]+$"
)
_MAX_IDEMPOTENCY_TOKEN = 36

# PCA SigningAlgorithm → (the CA key family it needs, the signature OID it produces).
SIGNING_ALGORITHMS: dict[str, tuple[str, x509.ObjectIdentifier]] = {
    "SHA256WITHECDSA": ("EC", SignatureAlgorithmOID.ECDSA_WITH_SHA256),
    "SHA384WITHECDSA": ("EC", SignatureAlgorithmOID.ECDSA_WITH_SHA384),
    "SHA512WITHECDSA": ("EC", SignatureAlgorithmOID.ECDSA_WITH_SHA512),
    "SHA256WITHRSA": ("RSA", SignatureAlgorithmOID.RSA_WITH_SHA256),
    "SHA384WITHRSA": ("RSA", SignatureAlgorithmOID.RSA_WITH_SHA384),
    "SHA512WITHRSA": ("RSA", SignatureAlgorithmOID.RSA_WITH_SHA512),
    "SHA256WITHRSA_PSS": ("RSA", SignatureAlgorithmOID.RSASSA_PSS),
    "SHA384WITHRSA_PSS": ("RSA", SignatureAlgorithmOID.RSASSA_PSS),
    "SHA512WITHRSA_PSS": ("RSA", SignatureAlgorithmOID.RSASSA_PSS),
    "ML_DSA_44": ("ML_DSA_44", SignatureAlgorithmOID.ML_DSA_44),
    "ML_DSA_65": ("ML_DSA_65", SignatureAlgorithmOID.ML_DSA_65),
    "ML_DSA_87": ("ML_DSA_87", SignatureAlgorithmOID.ML_DSA_87),
}


def _key_family(key_algorithm: str) -> str:
    """RSA_2048 → RSA, EC_prime256v1 → EC, ML_DSA_65 → ML_DSA_65 (the CA's KeyAlgorithm)."""
    return key_algorithm.split("_", 1)[0] if key_algorithm[:3] in ("RSA", "EC_") else key_algorithm


REVOCATION_REASONS: dict[x509.ReasonFlags, str] = {
    x509.ReasonFlags.unspecified: "UNSPECIFIED",
    x509.ReasonFlags.key_compromise: "KEY_COMPROMISE",
    x509.ReasonFlags.ca_compromise: "CERTIFICATE_AUTHORITY_COMPROMISE",
    x509.ReasonFlags.affiliation_changed: "AFFILIATION_CHANGED",
    x509.ReasonFlags.superseded: "SUPERSEDED",
    x509.ReasonFlags.cessation_of_operation: "CESSATION_OF_OPERATION",
    x509.ReasonFlags.privilege_withdrawn: "PRIVILEGE_WITHDRAWN",
    x509.ReasonFlags.aa_compromise: "A_A_COMPROMISE",
}

# -- error classes --------------------------------------------------------------------------

# Worth retrying soon: the service is busy or the network hiccuped.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ConcurrentModificationException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# The request itself is unacceptable: another engine or a retry would hide a policy problem.
REFUSAL_CODES = frozenset(
    {
        "ValidationException",
        "MalformedCSRException",
        "InvalidArgsException",
        "InvalidRequestException",
        "RequestFailedException",
    }
)
# Everything else (InvalidStateException, ResourceNotFoundException, AccessDeniedException,
# LimitExceededException, …) means this CA cannot sign now however often we ask: a
# TransientEngineError without retries, so the route fails over to its next engine.


class _InProgress(TransientEngineError):
    """PCA has accepted the request but the certificate is not ready (RequestInProgress)."""


# -- what goes into IssueCertificate ---------------------------------------------------------

# ASN1Subject fields in the order of the API model, which is the order PCA writes them in.
# A subject in another order (or with attributes PCA has no field for, or repeated ones) is
# sent as CustomAttributes, which keep the order; the two cannot be mixed.
SUBJECT_FIELDS: tuple[tuple[x509.ObjectIdentifier, str], ...] = (
    (NameOID.COUNTRY_NAME, "Country"),
    (NameOID.ORGANIZATION_NAME, "Organization"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OrganizationalUnit"),
    (NameOID.DN_QUALIFIER, "DistinguishedNameQualifier"),
    (NameOID.STATE_OR_PROVINCE_NAME, "State"),
    (NameOID.COMMON_NAME, "CommonName"),
    (NameOID.SERIAL_NUMBER, "SerialNumber"),
    (NameOID.LOCALITY_NAME, "Locality"),
    (NameOID.TITLE, "Title"),
    (NameOID.SURNAME, "Surname"),
    (NameOID.GIVEN_NAME, "GivenName"),
    (NameOID.INITIALS, "Initials"),
    (NameOID.PSEUDONYM, "Pseudonym"),
    (NameOID.GENERATION_QUALIFIER, "GenerationQualifier"),
)
EKU_TYPES: dict[x509.ObjectIdentifier, str] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "SERVER_AUTH",
    ExtendedKeyUsageOID.CLIENT_AUTH: "CLIENT_AUTH",
    ExtendedKeyUsageOID.CODE_SIGNING: "CODE_SIGNING",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "EMAIL_PROTECTION",
    ExtendedKeyUsageOID.TIME_STAMPING: "TIME_STAMPING",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP_SIGNING",
    ExtendedKeyUsageOID.SMARTCARD_LOGON: "SMART_CARD_LOGIN",
    ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY: "CERTIFICATE_TRANSPARENCY",
}
KEY_USAGE_FIELDS = (
    ("digital_signature", "DigitalSignature"),
    ("content_commitment", "NonRepudiation"),
    ("key_encipherment", "KeyEncipherment"),
    ("data_encipherment", "DataEncipherment"),
    ("key_agreement", "KeyAgreement"),
    ("key_cert_sign", "KeyCertSign"),
    ("crl_sign", "CRLSign"),
)
# Extensions PCA writes from its template and the CA (never from the request): SKI is
# "derived from CSR" (so a profile's truncated SHA-256 key id is not reproduced), AKI from the
# CA, CRL distribution points and AIA from the CA's revocation configuration.
PCA_OWNED_EXTENSIONS = frozenset(
    {
        x509.BasicConstraints.oid,
        x509.SubjectKeyIdentifier.oid,
        x509.AuthorityKeyIdentifier.oid,
        x509.CRLDistributionPoints.oid,
        x509.AuthorityInformationAccess.oid,
    }
)
_TLS_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
# The end-entity templates fix key usage to "critical, digitalSignature, keyEncipherment",
# EKU by name, and a non-critical CA:FALSE; any request they would not reproduce exactly goes
# to a Blank template, whose key usage and EKU come from the ApiPassthrough.
_SERVER, _CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
_NAMED_TEMPLATES: dict[frozenset[x509.ObjectIdentifier], str] = {
    frozenset({_SERVER}): "EndEntityServerAuthCertificate_APIPassthrough/V1",
    frozenset({_CLIENT}): "EndEntityClientAuthCertificate_APIPassthrough/V1",
    frozenset({_SERVER, _CLIENT}): "EndEntityCertificate_APIPassthrough/V1",
}
BLANK_TEMPLATE = "BlankEndEntityCertificate_APIPassthrough/V1"
BLANK_CRITICAL_BC_TEMPLATE = "BlankEndEntityCertificate_CriticalBasicConstraints_APIPassthrough/V1"


def _extension(
    request: SigningRequest, extension_type: type[x509.ExtensionType]
) -> x509.Extension[Any] | None:
    for extension in request.extensions:
        if extension.oid == extension_type.oid:
            return extension
    return None


def template_name(request: SigningRequest) -> str:
    """The PCA template that reproduces what policy decided: by EKU when it can, else Blank."""
    key_usage = _extension(request, x509.KeyUsage)
    extended = _extension(request, x509.ExtendedKeyUsage)
    constraints = _extension(request, x509.BasicConstraints)
    critical_constraints = constraints is not None and constraints.critical
    if (
        key_usage is not None
        and key_usage.critical
        and key_usage.value == _TLS_KEY_USAGE
        and extended is not None
        and not extended.critical
        and frozenset(extended.value) in _NAMED_TEMPLATES
        and not critical_constraints
    ):
        return _NAMED_TEMPLATES[frozenset(extended.value)]
    return BLANK_CRITICAL_BC_TEMPLATE if critical_constraints else BLANK_TEMPLATE


def template_arn(request: SigningRequest, partition: str = "aws") -> str:
    """Template ARNs have no region or account, only the partition (aws, aws-us-gov, aws-cn)."""
    return f"arn:{partition}:acm-pca:::template/{template_name(request)}"


def asn1_subject(name: x509.Name) -> dict[str, Any]:
    """An ASN1Subject that makes PCA write exactly `name` (same attributes, same order)."""
    attributes: list[x509.NameAttribute[Any]] = []
    for rdn in name.rdns:
        if len(rdn) != 1:
            raise PermanentEngineError("AWS Private CA cannot write multi-valued RDNs")
        attributes.extend(rdn)
    positions = {oid: index for index, (oid, _) in enumerate(SUBJECT_FIELDS)}
    indexes = [positions.get(attribute.oid, -1) for attribute in attributes]
    if -1 not in indexes and indexes == sorted(set(indexes)):  # known, once each, PCA's order
        return {
            SUBJECT_FIELDS[index][1]: str(attribute.value)
            for index, attribute in zip(indexes, attributes, strict=True)
        }
    return {
        "CustomAttributes": [
            {"ObjectIdentifier": a.oid.dotted_string, "Value": str(a.value)} for a in attributes
        ]
    }


def general_name(name: x509.GeneralName) -> dict[str, Any]:
    """One SubjectAlternativeNames entry of the ApiPassthrough."""
    if isinstance(name, x509.DNSName):
        return {"DnsName": name.value}
    if isinstance(name, x509.RFC822Name):
        return {"Rfc822Name": name.value}
    if isinstance(name, x509.UniformResourceIdentifier):
        return {"UniformResourceIdentifier": name.value}
    if isinstance(name, x509.IPAddress) and not hasattr(name.value, "prefixlen"):
        return {"IpAddress": str(name.value)}
    if isinstance(name, x509.RegisteredID):
        return {"RegisteredId": name.value.dotted_string}
    if isinstance(name, x509.DirectoryName):
        return {"DirectoryName": asn1_subject(name.value)}
    raise PermanentEngineError(f"AWS Private CA cannot pass through the name {name!r}")


def _policies(policies: x509.CertificatePolicies) -> list[dict[str, Any]]:
    result = []
    for policy in policies:
        entry: dict[str, Any] = {"CertPolicyId": policy.policy_identifier.dotted_string}
        qualifiers = policy.policy_qualifiers or []
        if any(not isinstance(q, str) for q in qualifiers):
            raise PermanentEngineError("AWS Private CA passes through only CPS URI qualifiers")
        if qualifiers:
            entry["PolicyQualifiers"] = [
                {"PolicyQualifierId": "CPS", "Qualifier": {"CpsUri": q}} for q in qualifiers
            ]
        result.append(entry)
    return result


def api_passthrough(request: SigningRequest) -> dict[str, Any]:
    """Subject and extensions policy decided, in PCA's ApiPassthrough shape."""
    extensions: dict[str, Any] = {}
    custom: list[dict[str, Any]] = []
    for extension in request.extensions:
        value = extension.value
        if isinstance(value, x509.KeyUsage):
            flags = {field: getattr(value, attr) for attr, field in KEY_USAGE_FIELDS}
            if value.key_agreement:
                flags["EncipherOnly"] = value.encipher_only
                flags["DecipherOnly"] = value.decipher_only
            extensions["KeyUsage"] = flags
        elif isinstance(value, x509.ExtendedKeyUsage):
            extensions["ExtendedKeyUsage"] = [
                {"ExtendedKeyUsageType": EKU_TYPES[oid]}
                if oid in EKU_TYPES
                else {"ExtendedKeyUsageObjectIdentifier": oid.dotted_string}
                for oid in value
            ]
        elif isinstance(value, x509.SubjectAlternativeName):
            extensions["SubjectAlternativeNames"] = [general_name(name) for name in value]
        elif isinstance(value, x509.CertificatePolicies):
            extensions["CertificatePolicies"] = _policies(value)
        elif extension.oid not in PCA_OWNED_EXTENSIONS:
            custom.append(
                {
                    "ObjectIdentifier": extension.oid.dotted_string,
                    "Value": base64.b64encode(value.public_bytes()).decode(),
                    "Critical": extension.critical,
                }
            )
    if custom:
        extensions["CustomExtensions"] = custom
    passthrough: dict[str, Any] = {}
    if len(request.subject):
        passthrough["Subject"] = asn1_subject(request.subject)
    if extensions:
        passthrough["Extensions"] = extensions
    return passthrough


def serial_text(serial_number: int) -> str:
    """The serial as PCA's RevokeCertificate wants it: hex octets joined by colons."""
    raw = serial_number.to_bytes(max(1, (serial_number.bit_length() + 7) // 8), "big")
    return ":".join(f"{octet:02x}" for octet in raw)


def idempotency_token(serial_number: int) -> str:
    """One certificate per intent record: a retried IssueCertificate (within PCA's 5-minute
    idempotency window) returns the certificate of the first call instead of a second one."""
    token = f"{serial_number:x}"
    if len(token) <= _MAX_IDEMPOTENCY_TOKEN:
        return token
    return hashlib.sha256(token.encode()).hexdigest()[:_MAX_IDEMPOTENCY_TOKEN]


def _epoch(moment: datetime.datetime) -> int:
    return int(moment.timestamp())


def _subject_key_algorithm(public_key: Any) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_CURVES.get(public_key.curve.name, public_key.curve.name)
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    return type(public_key).__name__


# -- what comes back --------------------------------------------------------------------------


def conformance_problems(request: SigningRequest, certificate: x509.Certificate) -> list[str]:
    """How `certificate` differs from what policy decided (empty when it conforms).

    PCA's own extensions (SKI, AKI, CDP, AIA, a CA:FALSE basic constraints) and the
    criticality of KU/EKU/SAN are PCA's choice; everything else must be as requested.
    """
    problems = []
    if certificate.subject != request.subject:
        problems.append(f"subject {certificate.subject.rfc4514_string()!r}")
    if certificate.not_valid_before_utc != request.not_before.replace(microsecond=0):
        problems.append(f"notBefore {certificate.not_valid_before_utc.isoformat()}")
    if certificate.not_valid_after_utc != request.not_after.replace(microsecond=0):
        problems.append(f"notAfter {certificate.not_valid_after_utc.isoformat()}")
    issued = {extension.oid: extension for extension in certificate.extensions}
    requested = {extension.oid: extension for extension in request.extensions}
    for oid, extension in requested.items():
        if oid in (x509.BasicConstraints.oid, x509.SubjectKeyIdentifier.oid):
            continue
        got = issued.get(oid)
        if got is None:
            problems.append(f"missing {oid._name}")
        elif isinstance(extension.value, x509.SubjectAlternativeName | x509.ExtendedKeyUsage):
            if set(got.value) != set(extension.value):
                problems.append(f"{oid._name} {got.value!r}")
        elif got.value != extension.value:
            problems.append(f"{oid._name} {got.value!r}")
    for oid, extension in issued.items():
        if oid not in requested and oid not in PCA_OWNED_EXTENSIONS:
            problems.append(f"unrequested {oid._name}")
        if isinstance(extension.value, x509.BasicConstraints) and extension.value.ca:
            problems.append("a CA certificate")
    return problems


# -- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Authority:
    """What DescribeCertificateAuthority and GetCertificateAuthorityCertificate said."""

    status: str
    usage_mode: str
    signing_algorithm: str
    chain: tuple[x509.Certificate, ...]
    loaded_at: float


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: attempt n waits base·2ⁿ (capped), times 0.5 to 1.0."""

    max_attempts: int = 5
    base_seconds: float = 0.2
    max_seconds: float = 5.0

    def delay(self, attempt: int, jitter: float) -> float:
        return min(self.max_seconds, self.base_seconds * 2**attempt) * (0.5 + 0.5 * jitter)


def _default_client(region: str) -> Any:
    """A client that does not retry by itself: the engine's own backoff is the only one."""
    return engine_client(
        "acm-pca",
        region_name=region,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=15,
        ),
    )


class PrivateCAEngine:
    """An AWS Private CA (GENERAL_PURPOSE or SHORT_LIVED_CERTIFICATE) reached through its API.

    Nothing is called at construction (a Lambda cold start must not fail on one CA); the CA
    is described on first use and again every `refresh_seconds`.
    """

    def __init__(
        self,
        engine_id: str,
        ca_arn: str,
        mode: str | None = None,
        signing_algorithm: str | None = None,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        max_attempts: int = 5,
        backoff_base_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
        poll_interval_seconds: float = 1.0,
        max_wait_seconds: float = 60.0,
        refresh_seconds: float = 300.0,
        verify_content: bool = True,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`verify_content=False` only for an emulator that ignores ApiPassthrough and
        Validity (moto); signature, public key and algorithm are checked regardless."""
        match = _CA_ARN.match(ca_arn)
        if match is None:
            raise ValueError(f"PCA engine {engine_id}: {ca_arn!r} is not a private CA ARN")
        if mode is not None and mode not in USAGE_MODES:
            raise ValueError(f"PCA engine {engine_id}: mode must be one of {USAGE_MODES}")
        if signing_algorithm is not None and signing_algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(
                f"PCA engine {engine_id}: signing_algorithm must be one of "
                f"{sorted(SIGNING_ALGORITHMS)}"
            )
        if max_attempts < 1:
            raise ValueError(f"PCA engine {engine_id}: max_attempts must be at least 1")
        self._engine_id = engine_id
        self._ca_arn = ca_arn
        self._partition = match["partition"]
        self._mode = mode
        self._signing_algorithm = signing_algorithm
        self._max_requests_per_second = max_requests_per_second
        self._backoff = Backoff(max_attempts, backoff_base_seconds, backoff_max_seconds)
        self._poll_interval = poll_interval_seconds
        self._max_wait = max_wait_seconds
        self._refresh = refresh_seconds
        self._verify_content = verify_content
        self._client = client if client is not None else _default_client(match["region"])
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self._lock = threading.Lock()
        self._authority_cache: _Authority | None = None

    @property
    def engine_id(self) -> str:
        return self._engine_id

    # -- CertBridge interface ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        authority = self._authority()
        ca_not_after = authority.chain[0].not_valid_after_utc
        remaining = max(ca_not_after - datetime.datetime.now(datetime.UTC), datetime.timedelta(0))
        short_lived = authority.usage_mode == SHORT_LIVED
        return Capabilities(
            engine_type="pca",
            signing_algorithm=SIGNING_ALGORITHMS[authority.signing_algorithm][1]._name,
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=min(remaining, SHORT_LIVED_MAX_VALIDITY) if short_lived else remaining,
            ca_not_after=ca_not_after,
            # A short-lived CA's certificates are revoked by expiry (that is the point of it).
            supports_revocation=not short_lived,
            supports_crl_signing=False,  # PCA publishes its own CRL; it signs none of ours
            max_requests_per_second=self._max_requests_per_second,
            assigns_serial_numbers=True,
        )

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        authority = self._authority()
        if authority.status != "ACTIVE":
            raise TransientEngineError(f"private CA {self._ca_arn} is {authority.status}")
        params = self.issue_certificate_params(request, authority)
        certificate_arn = self._call("issue_certificate", **params)["CertificateArn"]
        certificate = self._wait_for(certificate_arn)
        authority = self._check_issued(request, certificate, certificate_arn, authority)
        return IssuedCertificate(certificate=certificate, chain=authority.chain)

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """PCA records its own revocation time; `revoked_at` is the inventory's."""
        if self._authority().usage_mode == SHORT_LIVED:
            raise PermanentEngineError(
                f"private CA {self._ca_arn} is SHORT_LIVED_CERTIFICATE: its certificates are "
                "revoked by expiry"
            )
        if reason not in REVOCATION_REASONS:
            raise PermanentEngineError(f"AWS Private CA has no revocation reason {reason.value}")
        self._call(
            "revoke_certificate",
            accept={"RequestAlreadyProcessedException"},  # already revoked: nothing to do
            CertificateAuthorityArn=self._ca_arn,
            CertificateSerial=serial_text(serial_number),
            RevocationReason=REVOCATION_REASONS[reason],
        )

    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._authority().chain

    # -- the IssueCertificate request --------------------------------------------------------

    def issue_certificate_params(
        self, request: SigningRequest, authority: _Authority | None = None
    ) -> dict[str, Any]:
        """The IssueCertificate parameters for `request`, or PermanentEngineError if PCA
        cannot be asked for exactly what policy decided."""
        authority = authority or self._authority()
        if request.csr_der is None:
            raise PermanentEngineError(
                "AWS Private CA signs only CSRs and this request has none (a renewal for the "
                "same key must send a new CSR to a PCA route)"
            )
        try:
            csr = x509.load_der_x509_csr(request.csr_der)
            csr_key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as error:
            raise PermanentEngineError(f"the CSR cannot be read: {error}") from None
        if csr_key != request.public_key:
            raise PermanentEngineError("the CSR is for another key than the one policy approved")
        algorithm = _subject_key_algorithm(request.public_key)
        if algorithm not in SUBJECT_KEY_ALGORITHMS:
            raise PermanentEngineError(f"AWS Private CA does not certify {algorithm} keys")
        if authority.usage_mode == SHORT_LIVED:
            now = datetime.datetime.now(datetime.UTC)
            if request.not_after - now > SHORT_LIVED_MAX_VALIDITY:
                raise PermanentEngineError(
                    f"private CA {self._ca_arn} is SHORT_LIVED_CERTIFICATE: certificates live "
                    f"at most 7 days, this one would until {request.not_after.isoformat()}"
                )
        return {
            "CertificateAuthorityArn": self._ca_arn,
            "Csr": csr.public_bytes(serialization.Encoding.PEM),
            "SigningAlgorithm": authority.signing_algorithm,
            "TemplateArn": template_arn(request, self._partition),
            "ApiPassthrough": api_passthrough(request),
            "Validity": {"Type": "ABSOLUTE", "Value": _epoch(request.not_after)},
            "ValidityNotBefore": {"Type": "ABSOLUTE", "Value": _epoch(request.not_before)},
            "IdempotencyToken": idempotency_token(request.serial_number),
        }

    # -- calls --------------------------------------------------------------------------------

    def _call(self, operation: str, accept: Collection[str] = (), **params: Any) -> Any:
        """One PCA call with jittered exponential backoff on throttling, 5xx and network errors.

        Refusals of the request raise PermanentEngineError at once; a CA that cannot sign
        (disabled, missing, no permission, certificate quota reached) raises
        TransientEngineError at once, so the route fails over instead of waiting.
        """
        last = ""
        for attempt in range(self._backoff.max_attempts):
            try:
                return getattr(self._client, operation)(**params)
            except ClientError as error:
                details = error.response.get("Error", {})
                code = str(details.get("Code", ""))
                message = f"{code}: {details.get('Message', '')}"
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in accept:
                    return None
                if code == "RequestInProgressException":
                    raise _InProgress(f"AWS Private CA {operation}: {message}") from None
                if code in REFUSAL_CODES:
                    raise PermanentEngineError(
                        f"AWS Private CA refused {operation}: {message}"
                    ) from None
                if code not in RETRYABLE_CODES and status < 500 and status != 429:
                    raise TransientEngineError(
                        f"AWS Private CA cannot {operation} on {self._ca_arn}: {message}"
                    ) from None
                last = message
            except (BotoConnectionError, HTTPClientError) as error:
                last = str(error)
            if attempt + 1 < self._backoff.max_attempts:
                self._sleep(self._backoff.delay(attempt, self._jitter()))
        raise TransientEngineError(
            f"AWS Private CA {operation} failed {self._backoff.max_attempts} times: {last}"
        )

    def _wait_for(self, certificate_arn: str) -> x509.Certificate:
        """GetCertificate until PCA has signed (the CertificateIssued waiter, with our sleep)."""
        deadline = self._clock() + self._max_wait
        while True:
            try:
                response = self._call(
                    "get_certificate",
                    CertificateAuthorityArn=self._ca_arn,
                    CertificateArn=certificate_arn,
                )
                return x509.load_pem_x509_certificate(response["Certificate"].encode())
            except _InProgress:
                if self._clock() >= deadline:
                    raise TransientEngineError(
                        f"{certificate_arn} was still being issued after {self._max_wait:g} s"
                    ) from None
                self._sleep(self._poll_interval)

    # -- the CA and what it returns -------------------------------------------------------

    def _authority(self, refresh: bool = False) -> _Authority:
        with self._lock:
            cached = self._authority_cache
            if refresh or cached is None or self._clock() - cached.loaded_at > self._refresh:
                cached = self._authority_cache = self._load_authority()
            return cached

    def _load_authority(self) -> _Authority:
        described = self._call(
            "describe_certificate_authority", CertificateAuthorityArn=self._ca_arn
        )["CertificateAuthority"]
        usage_mode = described.get("UsageMode", GENERAL_PURPOSE)
        if self._mode is not None and usage_mode != self._mode:
            raise TransientEngineError(
                f"PCA engine {self._engine_id} is configured as {self._mode} but "
                f"{self._ca_arn} is {usage_mode}"
            )
        configuration = described["CertificateAuthorityConfiguration"]
        key_family = _key_family(configuration["KeyAlgorithm"])
        signing_algorithm = self._signing_algorithm or configuration["SigningAlgorithm"]
        if SIGNING_ALGORITHMS.get(signing_algorithm, ("",))[0] != key_family:
            raise TransientEngineError(
                f"PCA engine {self._engine_id}: {signing_algorithm} cannot be used with a "
                f"{configuration['KeyAlgorithm']} CA key"
            )
        response = self._call(
            "get_certificate_authority_certificate", CertificateAuthorityArn=self._ca_arn
        )
        issuing = x509.load_pem_x509_certificate(response["Certificate"].encode())
        parents = response.get("CertificateChain")
        chain = (issuing, *(x509.load_pem_x509_certificates(parents.encode()) if parents else ()))
        return _Authority(
            status=described["Status"],
            usage_mode=usage_mode,
            signing_algorithm=signing_algorithm,
            chain=chain,
            loaded_at=self._clock(),
        )

    def _check_issued(
        self,
        request: SigningRequest,
        certificate: x509.Certificate,
        certificate_arn: str,
        authority: _Authority,
    ) -> _Authority:
        """Refuse to hand out what the CA chain does not sign or policy did not approve.

        The certificate exists in PCA by now; the error names its ARN and serial so the
        failure record lets an operator revoke it.
        """
        where = f"{certificate_arn} (serial {serial_text(certificate.serial_number)})"
        try:
            certificate.verify_directly_issued_by(authority.chain[0])
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            authority = self._authority(refresh=True)  # the CA certificate may have been renewed
            try:
                certificate.verify_directly_issued_by(authority.chain[0])
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                raise PermanentEngineError(
                    f"{where} does not verify against the CA certificate"
                ) from None
        problems = []
        if certificate.public_key() != request.public_key:
            problems.append("another public key")
        expected = SIGNING_ALGORITHMS[authority.signing_algorithm][1]
        if certificate.signature_algorithm_oid != expected:
            problems.append(f"signature algorithm {certificate.signature_algorithm_oid._name}")
        if self._verify_content:
            problems.extend(conformance_problems(request, certificate))
        if problems:
            raise PermanentEngineError(
                f"{where} differs from what policy approved: {'; '.join(problems)}"
            )
        return authority
