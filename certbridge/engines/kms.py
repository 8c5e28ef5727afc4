"""A CA whose issuing key is an AWS KMS asymmetric key: HSM-backed, never exportable.

The certificate is built here, its TBSCertificate bytes are signed with kms:Sign and the DER
is assembled around the signature (`certbridge.remote_signing`), which verifies it against the
issuing CA's public key before anything is returned. The CA certificates themselves come from
configuration (`chain_pem` or `chain_file`), so building the engine costs no AWS call and a
cold start survives a KMS outage; the KMS key is checked against that chain on first use.
`create_kms_hierarchy` bootstraps a root and an issuing key in KMS and both CA certificates.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from certbridge.aws_session import engine_client
from certbridge.certificates import (
    CA_BACKDATE,
    ISSUING_VALIDITY,
    ROOT_VALIDITY,
    ca_certificate_builder,
    ca_name,
)
from certbridge.engines.local import SUBJECT_KEY_ALGORITHMS
from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.remote_signing import key_kind, sign_remotely

# kms:Sign takes at most 4096 bytes with MessageType RAW. A TBSCertificate is usually far
# smaller; a larger one (an ML-DSA-87 subject key with many SANs) is sent pre-hashed instead.
RAW_MESSAGE_LIMIT = 4096

# Error codes after which this engine may work again soon, or another engine may work now.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSInternalException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True)
class KeySpec:
    """One KMS key spec: how KMS names its signing algorithm, how certificates name it."""

    key_spec: str
    signing_algorithm: str  # kms:Sign SigningAlgorithm
    certificate_algorithm: str  # the certificate's signatureAlgorithm as cryptography names it
    kind: str  # certbridge.remote_signing key kind (selects the TBS signature algorithm)


KEY_SPECS: dict[str, KeySpec] = {
    spec.key_spec: spec
    for spec in (
        KeySpec("ECC_NIST_P256", "ECDSA_SHA_256", "ecdsa-with-SHA256", "P-256"),
        KeySpec("ECC_NIST_P384", "ECDSA_SHA_384", "ecdsa-with-SHA384", "P-384"),
        KeySpec("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "sha256WithRSAEncryption", "RSA"),
        KeySpec("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_256", "sha256WithRSAEncryption", "RSA"),
        KeySpec("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_256", "sha256WithRSAEncryption", "RSA"),
        # FIPS 204 pure ML-DSA (empty context); KMS names the one algorithm ML_DSA_SHAKE_256.
        KeySpec("ML_DSA_44", "ML_DSA_SHAKE_256", "ML-DSA-44", "ML-DSA-44"),
        KeySpec("ML_DSA_65", "ML_DSA_SHAKE_256", "ML-DSA-65", "ML-DSA-65"),
        KeySpec("ML_DSA_87", "ML_DSA_SHAKE_256", "ML-DSA-87", "ML-DSA-87"),
    )
}


SIGNING_PUBLIC_KEYS = (
    ec.EllipticCurvePublicKey,
    rsa.RSAPublicKey,
    mldsa.MLDSA44PublicKey,
    mldsa.MLDSA65PublicKey,
    mldsa.MLDSA87PublicKey,
)


def key_spec_for(public_key: CertificateIssuerPublicKeyTypes) -> KeySpec:
    """The KMS key spec that can hold the private half of `public_key`."""
    kind = key_kind(public_key)
    if kind == "RSA":
        assert isinstance(public_key, rsa.RSAPublicKey)
        name = f"RSA_{public_key.key_size}"
    else:
        name = {"P-256": "ECC_NIST_P256", "P-384": "ECC_NIST_P384"}.get(
            kind, kind.replace("-", "_")
        )
    try:
        return KEY_SPECS[name]
    except KeyError:
        raise PermanentEngineError(f"KMS has no key spec for a {kind} CA key") from None


def map_aws_error(error: Exception, action: str) -> Exception:
    """Translate a botocore failure into the engine error the router understands.

    Throttling, KMS internal errors, timeouts and lost connections may pass (or another engine
    of the route may answer now): transient. Access denied, unknown or disabled keys and
    invalid requests need an operator: permanent, so the router does not hide them.
    """
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = error.response.get("Error", {}).get("Message", "")
        text = f"{action}: {code} {message}".rstrip()
        if code in TRANSIENT_ERROR_CODES or status >= 500:
            return TransientEngineError(text)
        return PermanentEngineError(text)
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return TransientEngineError(f"{action}: {error}")
    return PermanentEngineError(f"{action}: {error}")


class KmsSigner:
    """Signs TBS bytes with one KMS key; the only place this module calls kms:Sign."""

    def __init__(
        self, kms_client: Any, key_id: str, public_key: CertificateIssuerPublicKeyTypes
    ) -> None:
        self._client = kms_client
        self._key_id = key_id
        self._public_key = public_key
        self.spec = key_spec_for(public_key)

    def message(self, tbs: bytes) -> tuple[bytes, str]:
        """(Message, MessageType) for kms:Sign: RAW up to 4096 bytes, pre-hashed beyond.

        Beyond the RAW limit ML-DSA takes FIPS 204's external μ (SHAKE256 over the public key
        hash and the message, which yields the same signature as RAW), ECDSA and RSA the
        SHA-256/384 digest the signature algorithm uses anyway.
        """
        if len(tbs) <= RAW_MESSAGE_LIMIT:
            return tbs, "RAW"
        if self.spec.kind.startswith("ML-DSA-"):
            hasher = mldsa.MLDSAMuHasher(self._public_key)
            hasher.update(tbs)
            return hasher.finalize(), "EXTERNAL_MU"
        digest = hashlib.sha384 if self.spec.kind == "P-384" else hashlib.sha256
        return digest(tbs).digest(), "DIGEST"

    def sign(self, tbs: bytes) -> bytes:
        message, message_type = self.message(tbs)
        try:
            response = self._client.sign(
                KeyId=self._key_id,
                Message=message,
                MessageType=message_type,
                SigningAlgorithm=self.spec.signing_algorithm,
            )
        except (ClientError, BotoCoreError) as error:
            raise map_aws_error(error, f"kms:Sign with {self._key_id}") from error
        return bytes(response["Signature"])


def make_kms_client(
    region: str | None = None,
    endpoint_url: str | None = None,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    max_attempts: int = 2,
) -> Any:
    """A KMS client that gives up quickly: a slow HSM should fail over, not hold the request.

    Standard retry mode still retries throttling once with jittered backoff before the router
    moves on to the next engine of the route.
    """
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
    )
    return engine_client("kms", region_name=region, endpoint_url=endpoint_url, config=config)


def load_chain(
    chain_pem: str | bytes | None = None, chain_file: str | Path | None = None
) -> tuple[x509.Certificate, ...]:
    """The configured CA chain, issuing CA first and root last, each link verified."""
    if (chain_pem is None) == (chain_file is None):
        raise PermanentEngineError("a KMS CA needs exactly one of chain_pem and chain_file")
    data = Path(chain_file).read_bytes() if chain_file is not None else chain_pem
    assert data is not None
    try:
        chain = tuple(
            x509.load_pem_x509_certificates(data.encode() if isinstance(data, str) else data)
        )
    except ValueError as error:
        raise PermanentEngineError(f"the KMS CA chain is not PEM certificates: {error}") from None
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError) as error:
            raise PermanentEngineError(
                f"the KMS CA chain is out of order (issuing CA first, root last): {error}"
            ) from None
    if len(chain) < 2:
        raise PermanentEngineError("the KMS CA chain needs the issuing CA and its root")
    return chain


class KmsCAEngine:
    """Signs end-entity certificates with an issuing CA key held in AWS KMS."""

    def __init__(
        self,
        engine_id: str,
        key_id: str,
        chain_pem: str | None = None,
        chain_file: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 2,
        kms_client: Any = None,
    ) -> None:
        """`key_id` is a key id, key ARN, alias name (`alias/…`) or alias ARN.

        `kms_client` replaces the boto3 client (tests, or a client with custom credentials);
        the other connection options are ignored when it is given.
        """
        self._engine_id = engine_id
        self._key_id = key_id
        self._chain = load_chain(chain_pem, chain_file)
        self._issuing = self._chain[0]
        self._client = kms_client or make_kms_client(
            region, endpoint_url, connect_timeout, read_timeout, max_attempts
        )
        self._signer = KmsSigner(self._client, key_id, self._issuing.public_key())
        self._key_checked = False
        self._lock = threading.Lock()

    @property
    def engine_id(self) -> str:
        return self._engine_id

    @property
    def key_spec(self) -> KeySpec:
        return self._signer.spec

    def capabilities(self) -> Capabilities:
        not_after = self._issuing.not_valid_after_utc
        now = datetime.datetime.now(datetime.UTC)
        return Capabilities(
            engine_type="kms",
            signing_algorithm=self._signer.spec.certificate_algorithm,
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=max(not_after - now, datetime.timedelta(0)),
            ca_not_after=not_after,
            supports_revocation=True,
            supports_crl_signing=False,  # no sign_crl for KMS keys yet
        )

    def check_key(self) -> None:
        """Confirm once that the KMS key is the configured issuing CA's key and may sign.

        Without it a mismatched key_id would only surface as "signature does not verify";
        with it the operator reads which of key, usage or algorithm is wrong.
        """
        if self._key_checked:
            return
        with self._lock:
            if self._key_checked:
                return
            metadata = get_public_key(self._client, self._key_id)
            expected = self._issuing.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if metadata.get("KeyUsage") != "SIGN_VERIFY":
                raise PermanentEngineError(
                    f"KMS key {self._key_id} has usage {metadata.get('KeyUsage')}, not SIGN_VERIFY"
                )
            if self._signer.spec.signing_algorithm not in metadata.get("SigningAlgorithms", []):
                raise PermanentEngineError(
                    f"KMS key {self._key_id} cannot sign with {self._signer.spec.signing_algorithm}"
                )
            if bytes(metadata["PublicKey"]) != expected:
                raise PermanentEngineError(
                    f"KMS key {self._key_id} is not the key of the configured issuing CA "
                    f"{self._issuing.subject.rfc4514_string()}"
                )
            self._key_checked = True

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        self.check_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self._issuing.subject)
            .public_key(request.public_key)
            .serial_number(request.serial_number)
            .not_valid_before(request.not_before)
            .not_valid_after(request.not_after)
            .add_extension(_authority_key_identifier(self._issuing), critical=False)
        )
        for extension in request.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        certificate = sign_remotely(builder, self._issuing.public_key(), self._signer.sign)
        return IssuedCertificate(certificate=certificate, chain=self._chain)

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """Nothing to tell KMS: it holds a key, not certificates; status lives in the inventory."""

    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's own SKI when it has one, so the AKI matches whatever method made it."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def get_public_key(client: Any, key_id: str) -> Mapping[str, Any]:
    """kms:GetPublicKey with errors mapped; the response as KMS returns it."""
    try:
        return client.get_public_key(KeyId=key_id)
    except (ClientError, BotoCoreError) as error:
        raise map_aws_error(error, f"kms:GetPublicKey for {key_id}") from error


def load_kms_public_key(client: Any, key_id: str) -> CertificateIssuerPublicKeyTypes:
    """The public half of a KMS key (DER SubjectPublicKeyInfo) as a cryptography key."""
    key = serialization.load_der_public_key(bytes(get_public_key(client, key_id)["PublicKey"]))
    if not isinstance(key, SIGNING_PUBLIC_KEYS):
        raise PermanentEngineError(f"KMS key {key_id} is not a signing key certplane can use")
    return key


@dataclass(frozen=True)
class KmsHierarchy:
    """A root and an issuing CA whose keys live in KMS, as `create_kms_hierarchy` made them."""

    root_key_id: str
    issuing_key_id: str
    root: x509.Certificate
    issuing: x509.Certificate

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        return (self.issuing, self.root)

    @property
    def chain_pem(self) -> str:
        """What `KmsCAEngine(chain_pem=…)` and the `chain_pem` option expect."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)


def create_kms_hierarchy(
    kms_client: Any,
    key_spec: str = "ECC_NIST_P256",
    name: str = "certplane",
    organization: str = "certplane",
    alias_prefix: str | None = None,
    tags: Mapping[str, str] | None = None,
    now: datetime.datetime | None = None,
    root_validity: datetime.timedelta = ROOT_VALIDITY,
    issuing_validity: datetime.timedelta = ISSUING_VALIDITY,
) -> KmsHierarchy:
    """Create a root key and an issuing key in KMS and sign both CA certificates with KMS.

    The hierarchy has the local CA's shape (`<name> Root CA` / `<name> Issuing CA`, pathlen 0
    under the root). Afterwards the root key is needed only to sign a new issuing CA: an
    operator should restrict or disable it (see docs/engines.md).
    """
    if key_spec not in KEY_SPECS:
        raise PermanentEngineError(
            f"unsupported KMS key spec {key_spec!r}; known: {sorted(KEY_SPECS)}"
        )
    spec_tags = [{"TagKey": k, "TagValue": v} for k, v in (tags or {}).items()]
    key_ids: dict[str, str] = {}
    for role in ("root", "issuing"):
        arguments: dict[str, Any] = {
            "KeySpec": key_spec,
            "KeyUsage": "SIGN_VERIFY",
            "Description": f"{name} {role} CA key (certplane)",
        }
        if spec_tags:
            arguments["Tags"] = spec_tags
        try:
            key_ids[role] = kms_client.create_key(**arguments)["KeyMetadata"]["KeyId"]
            if alias_prefix:
                kms_client.create_alias(
                    AliasName=f"alias/{alias_prefix}-{role}", TargetKeyId=key_ids[role]
                )
        except (ClientError, BotoCoreError) as error:
            raise map_aws_error(error, f"creating the {role} CA key") from error
    root_public = load_kms_public_key(kms_client, key_ids["root"])
    issuing_public = load_kms_public_key(kms_client, key_ids["issuing"])
    start = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0) - CA_BACKDATE
    root_name = ca_name(f"{name} Root CA", organization)
    issuing_name = ca_name(f"{name} Issuing CA", organization)
    root_signer = KmsSigner(kms_client, key_ids["root"], root_public)
    root = sign_remotely(
        ca_certificate_builder(
            root_name, root_public, root_name, root_public, start, start + root_validity, None
        ),
        root_public,
        root_signer.sign,
    )
    issuing = sign_remotely(
        ca_certificate_builder(
            issuing_name,
            issuing_public,
            root_name,
            root_public,
            start,
            min(start + issuing_validity, root.not_valid_after_utc),
            0,
        ),
        root_public,
        root_signer.sign,
    )
    return KmsHierarchy(key_ids["root"], key_ids["issuing"], root, issuing)
