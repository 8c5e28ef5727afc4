"""The ACME account: its key (generated once, encrypted at rest), the secrets that unlock and
bind it, and finding or registering it at the CA.

The key is the account (RFC 8555 §7.3): whoever holds it can order and revoke. It is stored
only as an encrypted PKCS#8 PEM (PBES2, AES-256-CBC; `openssl pkey` can still open it with
the passphrase), so a copy of the state folder or bucket alone is useless. The passphrase
and the External Account Binding HMAC key come from an environment variable, a file or a
Secrets Manager secret — never from the TOML, which is committed and deployed as plain text.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import josepy as jose
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certbridge.engines.acme_state import StateStore
from certbridge.interface import TransientEngineError

logger = logging.getLogger(__name__)

ACCOUNT_KEY = "account-key.pem"
# Well below what Secrets Manager's get-random-password gives (32): refuses typed passwords,
# whose PBKDF2 (2048 rounds, OpenSSL's PKCS#8 default) would be the weak link.
MIN_PASSPHRASE_LENGTH = 16
ACCOUNT_KEY_TYPES = ("P-256", "P-384", "RSA-2048", "RSA-3072", "RSA-4096")


class AccountSetupError(TransientEngineError):
    """The engine cannot use its account (a secret, the key, the CA's terms or EAB): nothing
    it signs can succeed until an operator acts, so the route fails over and the router's
    "CA Unavailable" event tells someone."""


@dataclass(frozen=True)
class SecretSource:
    """Where one secret comes from: an environment variable's name, a file's path, or a
    Secrets Manager secret id (its SecretString) — the same shape as the PKCS#11 PIN."""

    what: str
    env: str | None = None
    file: str | None = None
    secret: str | None = None

    def __post_init__(self) -> None:
        if len([s for s in (self.env, self.file, self.secret) if s]) > 1:
            raise ValueError(f"configure one source for the {self.what}: env, file or secret")

    @property
    def configured(self) -> bool:
        return bool(self.env or self.file or self.secret)

    def read(self) -> str:
        """The secret; read at first use, so a cold start never fails on one CA's secret."""
        if self.env:
            value, where = os.environ.get(self.env, ""), f"environment variable {self.env}"
        elif self.file:
            path = Path(self.file)
            try:
                value = path.read_text().strip()
                mode = path.stat().st_mode
            except OSError as error:
                raise AccountSetupError(f"cannot read the {self.what} file: {error}") from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                logger.warning("%s file %s is readable by group or others", self.what, path)
            where = f"file {self.file}"
        elif self.secret:
            value, where = self._secret_string(self.secret), f"secret {self.secret}"
        else:
            raise AccountSetupError(f"no source is configured for the {self.what}")
        if not value:
            raise AccountSetupError(f"the {self.what} from {where} is empty")
        return value

    def _secret_string(self, secret_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        # only deployments that keep secrets in Secrets Manager need a client
        from certbridge.aws_session import engine_client

        try:
            client = engine_client("secretsmanager")
            return client.get_secret_value(SecretId=secret_id)["SecretString"]
        except (ClientError, BotoCoreError, KeyError) as error:
            raise AccountSetupError(
                f"cannot read the {self.what} secret {secret_id}: {error}"
            ) from None


# -- the key ------------------------------------------------------------------------------------

AccountKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def generate_account_key(key_type: str) -> AccountKey:
    if key_type == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("RSA-") and key_type in ACCOUNT_KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"account_key_type must be one of {ACCOUNT_KEY_TYPES}")


def encrypt_account_key(key: AccountKey, passphrase: str) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def load_or_create_account_key(
    state: StateStore, passphrase: str, key_type: str = "P-256"
) -> AccountKey:
    """The account key from `state`, generated and stored (encrypted) the first time.

    Two processes starting at once both generate one, only the first create succeeds and
    both then use the stored key.
    """
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise AccountSetupError(
            f"the account key passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters "
            "(generate one, e.g. aws secretsmanager get-random-password)"
        )
    stored = state.read(ACCOUNT_KEY)
    if stored is None:
        fresh = encrypt_account_key(generate_account_key(key_type), passphrase)
        if state.create(ACCOUNT_KEY, fresh):
            logger.info("generated the ACME account key in %s", state.location)
        stored = state.read(ACCOUNT_KEY)
        if stored is None:
            raise AccountSetupError(f"the account key in {state.location} vanished")
    try:
        key = serialization.load_pem_private_key(stored, passphrase.encode())
    except (ValueError, TypeError) as error:
        raise AccountSetupError(
            f"cannot decrypt the ACME account key in {state.location} with the configured "
            f"passphrase ({error})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise AccountSetupError(f"the ACME account key in {state.location} is not EC or RSA")
    return key


def jws_key(key: AccountKey) -> tuple[jose.JWK, jose.JWASignature]:
    """The JWK and the JWS algorithm RFC 7518 pairs with it (ES256/ES384, RS256)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = jose.ES384 if key.curve.name == "secp384r1" else jose.ES256
        return jose.JWKEC(key=key), algorithm
    return jose.JWKRSA(key=key), jose.RS256


# -- the account at the CA ------------------------------------------------------------------------


def problem_code(problem: messages.Error) -> str:
    """The RFC 8555 problem code (`rateLimited`, …), also for codes newer than the library
    (userActionRequired, badPublicKey, …), whose `code` it reports as None."""
    typ = str(problem.typ)
    return typ.removeprefix(messages.ERROR_PREFIX) if typ.startswith(messages.ERROR_PREFIX) else typ


@dataclass(frozen=True)
class AccountSettings:
    """What a new account is registered with."""

    contact: Sequence[str] = ()
    agree_to_terms: bool = False
    eab_kid: str | None = None
    eab_hmac_key: str | None = None


def find_or_register(
    client: acme_client.ClientV2, key: jose.JWK, settings: AccountSettings
) -> messages.RegistrationResource:
    """The account of `key` at this CA: looked up first (onlyReturnExisting), registered when
    there is none. Sets it on the client so later requests are signed with its URL (kid)."""
    try:
        client.new_account(messages.NewRegistration(only_return_existing=True))
    except acme_errors.ConflictError as existing:  # 200 + Location: the account exists
        return _use(client, str(existing.location))
    except messages.Error as error:
        if problem_code(error) != "accountDoesNotExist":
            raise
    directory = client.directory
    terms = getattr(getattr(directory, "meta", None), "terms_of_service", None)
    if terms and not settings.agree_to_terms:
        raise AccountSetupError(
            f"the CA requires agreeing to its terms of service ({terms}); read them and set "
            "agree_to_terms = true"
        )
    binding = None
    if settings.eab_kid and settings.eab_hmac_key:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=key.public_key(),
            kid=settings.eab_kid,
            hmac_key=settings.eab_hmac_key,
            directory=directory,
        )
    elif client.external_account_required():
        raise AccountSetupError(
            "the CA requires External Account Binding: configure eab_kid and the HMAC key "
            "(eab_hmac_key_env, eab_hmac_key_file or eab_hmac_key_secret)"
        )
    registration = messages.NewRegistration(
        contact=tuple(settings.contact),
        terms_of_service_agreed=settings.agree_to_terms or None,
        external_account_binding=binding,
    )
    try:
        account = client.new_account(registration)
    except acme_errors.ConflictError as existing:  # registered meanwhile by another process
        return _use(client, str(existing.location))
    logger.info("registered ACME account %s", account.uri)
    return account


def _use(client: acme_client.ClientV2, uri: str) -> messages.RegistrationResource:
    account = messages.RegistrationResource(body=messages.Registration(), uri=uri)
    client.net.account = account
    return account
