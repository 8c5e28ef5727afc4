"""A CA whose issuing key lives on a PKCS#11 token (CloudHSM, Thales Luna, Entrust nShield,
SoftHSM2 in tests): the key never leaves the token, only TBS signatures come back.

Configuration names the module, the token, the key and a PEM chain file; the PIN comes from
an environment variable, a file or an AWS Secrets Manager secret, never from the TOML itself.
The engine checks at start that the key on the token is the key of the issuing certificate
(one signature, verified), so a mislabelled key fails the deployment, not the first device.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from certbridge.engines.pkcs11_provision import ProvisionedCA, provision_pkcs11_ca
from certbridge.engines.pkcs11_token import (
    DEFAULT_MODULE,
    Pkcs11Module,
    TokenKey,
    is_sensitive,
    token_signature,
)
from certbridge.interface import (
    Capabilities,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.remote_signing import key_kind, sign_remotely, verify_signature

logger = logging.getLogger(__name__)

# The subject key is only encoded, never used, so any key cryptography can put in a
# certificate can be certified whatever the token's own algorithm (tests issue each one).
SUBJECT_KEY_ALGORITHMS = ("P-256", "P-384", "Ed25519", "RSA", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
SIGNING_ALGORITHMS = {
    "P-256": "ecdsa-with-SHA256",
    "P-384": "ecdsa-with-SHA384",
    "RSA": "sha256WithRSAEncryption",
}

__all__ = [
    "DEFAULT_MODULE",
    "Pkcs11CAEngine",
    "ProvisionedCA",
    "load_chain",
    "provision_pkcs11_ca",
    "read_pin",
]


def read_pin(
    pin_env: str | None = None, pin_file: str | None = None, pin_secret: str | None = None
) -> tuple[str, str]:
    """The PIN and a description of where it came from (for messages; never the PIN).

    Exactly one source: an environment variable's name, a file's path, or a Secrets Manager
    secret id (its SecretString is the PIN; for CloudHSM that is `user:password`).
    """
    sources = [s for s in (pin_env, pin_file, pin_secret) if s]
    if len(sources) != 1:
        raise PermanentEngineError(
            "configure exactly one PIN source: pin_env, pin_file or pin_secret"
        )
    if pin_env:
        pin = os.environ.get(pin_env, "")
        where = f"environment variable {pin_env}"
    elif pin_file:
        path = Path(pin_file)
        try:
            pin = path.read_text().rstrip("\r\n")
            mode = path.stat().st_mode
        except OSError as error:
            raise PermanentEngineError(f"cannot read the PIN file {pin_file}: {error}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("PIN file %s is readable by group or others", pin_file)
        where = f"file {pin_file}"
    else:
        pin = _secret_string(str(pin_secret))
        where = f"secret {pin_secret}"
    if not pin:
        raise PermanentEngineError(f"the PIN from {where} is empty")
    return pin, where


def _secret_string(secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    # only deployments that keep the PIN in Secrets Manager need it
    from certbridge.aws_session import engine_client

    try:
        return engine_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as error:
        raise PermanentEngineError(f"cannot read the PIN secret {secret_id}: {error}") from None


def load_chain(chain_file: str | Path) -> tuple[x509.Certificate, ...]:
    """The CA chain from a PEM file, issuing CA first; each certificate signed by the next."""
    try:
        chain = tuple(x509.load_pem_x509_certificates(Path(chain_file).read_bytes()))
    except (OSError, ValueError) as error:
        raise PermanentEngineError(f"cannot read the CA chain {chain_file}: {error}") from None
    issuing = chain[0]
    try:
        constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PermanentEngineError(f"{chain_file}: the first certificate is not a CA")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise PermanentEngineError(
                f"{chain_file}: {child.subject.rfc4514_string()} is not issued by the "
                "certificate after it (order: issuing CA first, root last)"
            ) from None
    return chain


class Pkcs11CAEngine:
    """Signs with an issuing-CA key held on a PKCS#11 token, one session per engine."""

    def __init__(
        self,
        engine_id: str,
        token_label: str,
        chain_file: str,
        key_label: str | None = None,
        key_id: str | None = None,
        module: str = DEFAULT_MODULE,
        pin_env: str | None = None,
        pin_file: str | None = None,
        pin_secret: str | None = None,
        require_non_extractable: bool = True,
        pin: str | None = None,
    ) -> None:
        if pin is not None:
            raise PermanentEngineError(
                f"engine {engine_id}: never put the PIN in configuration; "
                "use pin_env, pin_file or pin_secret"
            )
        self._engine_id = engine_id
        self._chain = load_chain(chain_file)
        self._issuer_public_key = cast(CertificateIssuerPublicKeyTypes, self._chain[0].public_key())
        self._kind = key_kind(self._issuer_public_key)
        if self._kind not in SIGNING_ALGORITHMS:
            raise PermanentEngineError(
                f"engine {engine_id}: issuing CA key {self._kind} is not supported over PKCS#11"
            )
        try:
            key_id_bytes = bytes.fromhex(key_id) if key_id else None
        except ValueError:
            raise PermanentEngineError(f"engine {engine_id}: key_id must be hex") from None
        secret_pin, self._pin_source = read_pin(pin_env, pin_file, pin_secret)
        self._require_non_extractable = require_non_extractable
        self._key = TokenKey(
            Pkcs11Module.load(module),
            token_label,
            secret_pin,
            key_label=key_label,
            key_id=key_id_bytes,
            pin_source=self._pin_source,
        )
        self._key_checked = False
        try:
            self._check_key()
        except TransientEngineError as error:
            # A token that is down at start must not stop the process: the route fails over,
            # and the first request that reaches the token runs the check.
            logger.warning("engine %s: token not reachable at start: %s", engine_id, error)

    @property
    def engine_id(self) -> str:
        return self._engine_id

    def _check_key(self) -> None:
        """Prove the token key is the issuing certificate's key and cannot leave the token."""
        challenge = secrets.token_bytes(32)

        def sign_challenge(private_key: object) -> bytes:
            if self._require_non_extractable and not is_sensitive(private_key):
                raise PermanentEngineError(
                    f"{self._key.description} is extractable or not sensitive; generate the "
                    "CA key on the token (or set require_non_extractable = false)"
                )
            return token_signature(private_key, self._kind, challenge)

        signature = self._key.run(sign_challenge)
        try:
            verify_signature(self._issuer_public_key, signature, challenge, self._kind)
        except InvalidSignature:
            raise PermanentEngineError(
                f"engine {self._engine_id}: the {self._key.description} is not the key of "
                f"the issuing CA {self._chain[0].subject.rfc4514_string()}"
            ) from None
        self._key_checked = True

    def capabilities(self) -> Capabilities:
        not_after = self._chain[0].not_valid_after_utc
        now = datetime.datetime.now(datetime.UTC)
        return Capabilities(
            engine_type="pkcs11",
            signing_algorithm=SIGNING_ALGORITHMS[self._kind],
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=max(not_after - now, datetime.timedelta(0)),
            ca_not_after=not_after,
            supports_revocation=True,
            supports_crl_signing=False,  # no sign_crl for HSM keys yet
        )

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        issuing = self._chain[0]
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(issuing.subject)
            .public_key(request.public_key)
            .serial_number(request.serial_number)
            .not_valid_before(request.not_before)
            .not_valid_after(request.not_after)
            .add_extension(_authority_key_identifier(issuing), critical=False)
        )
        for extension in request.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        certificate = sign_remotely(builder, self._issuer_public_key, self._sign_tbs)
        return IssuedCertificate(certificate=certificate, chain=self._chain)

    def _sign_tbs(self, tbs: bytes) -> bytes:
        if not self._key_checked:
            self._check_key()
        return self._key.run(lambda private_key: token_signature(private_key, self._kind, tbs))

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """Nothing to tell the HSM: revocation state lives in the inventory."""

    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def close(self) -> None:
        """Close this engine's session (other engines on the token stay logged in)."""
        with self._key.lock:
            self._key.close()


def _authority_key_identifier(issuing: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's own SKI when it has one (a ceremony may have used another SKI method)."""
    try:
        ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuing.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
