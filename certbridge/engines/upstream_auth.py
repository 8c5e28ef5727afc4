"""The xPKI bearer tokens certplane presents to an upstream Certifier API, as libCertifier does.

X509: base64 of `{"tokenType": "X509", "certificate", "timestamp", "nonce", "signature"}`, the
signature being ECDSA-SHA256 over certificate DER ‖ timestamp ‖ nonce ‖ "X509", made with the
key of a "seed" certificate the upstream trusts for enrollment. SAT: base64 of
`{"tokenType": "SAT", "token", "nonce", "timestamp"}` with an opaque token the upstream's
tenant issued. Every request gets a fresh nonce and timestamp (the upstream refuses replays).

Secrets (the SAT, the seed key's passphrase) come from an environment variable, a file or an
AWS Secrets Manager secret, never from the TOML itself; they are read on first use, so a
Lambda cold start does not fail on one misconfigured CA.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import string
import threading
import time
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certbridge.interface import PermanentEngineError

logger = logging.getLogger(__name__)

X509 = "X509"
SAT = "SAT"
AUTH_TYPES = (X509, SAT)
_ALPHABET = string.ascii_letters + string.digits


def random_text(length: int = 16) -> str:
    """libCertifier's util_generate_random_value: nonces and x-xpki-tracking-id values."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bearer(document: dict[str, object]) -> str:
    return _b64(json.dumps(document).encode())


def read_secret(
    what: str, env: str | None = None, file: str | None = None, secret_id: str | None = None
) -> str:
    """A secret from exactly one source: an environment variable, a file, or Secrets Manager.

    The error names where it looked, never the value.
    """
    sources = [source for source in (env, file, secret_id) if source]
    if len(sources) != 1:
        raise PermanentEngineError(f"configure exactly one source for the {what}")
    if env:
        value, where = os.environ.get(env, ""), f"environment variable {env}"
    elif file:
        path, where = Path(file), f"file {file}"
        try:
            value = path.read_text().strip()
            if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                logger.warning("%s: the %s is readable by group or others", file, what)
        except OSError as error:
            raise PermanentEngineError(f"cannot read the {what} from {file}: {error}") from None
    else:
        value, where = _secrets_manager(what, str(secret_id)).strip(), f"secret {secret_id}"
    if not value:
        raise PermanentEngineError(f"the {what} from {where} is empty")
    return value


def _secrets_manager(what: str, secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    # only deployments that keep the secret in Secrets Manager need it
    from certbridge.aws_session import engine_client

    try:
        return engine_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as error:
        raise PermanentEngineError(f"cannot read the {what} secret {secret_id}: {error}") from None


class TokenSource(Protocol):
    """Makes a fresh bearer value for each request."""

    auth_type: str

    def bearer(self) -> str: ...

    def forget(self) -> None:
        """Drop cached secrets (the upstream refused them: they may have been rotated)."""


class SatTokens:
    """SAT tokens; the secret is read on first use and again after the upstream refuses it."""

    auth_type = SAT

    def __init__(
        self, env: str | None = None, file: str | None = None, secret_id: str | None = None
    ) -> None:
        if len([s for s in (env, file, secret_id) if s]) != 1:
            raise ValueError(
                "SAT authentication needs exactly one of sat_env, sat_file, sat_secret"
            )
        self._sources = (env, file, secret_id)
        self._lock = threading.Lock()
        self._token: str | None = None

    def _secret(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = read_secret("SAT token", *self._sources)
            return self._token

    def bearer(self) -> str:
        return _bearer(
            {
                "tokenType": SAT,
                "token": self._secret(),
                "nonce": random_text(),
                "timestamp": int(time.time() * 1000),
            }
        )

    def forget(self) -> None:
        with self._lock:
            self._token = None


class SeedTokens:
    """X509 tokens signed with a seed certificate's key (read, and matched, on first use)."""

    auth_type = X509

    def __init__(
        self,
        certificate_file: str,
        key_file: str,
        passphrase_env: str | None = None,
        passphrase_file: str | None = None,
        passphrase_secret: str | None = None,
    ) -> None:
        if len([s for s in (passphrase_env, passphrase_file, passphrase_secret) if s]) > 1:
            raise ValueError("configure at most one of key_passphrase_env/_file/_secret")
        self._certificate_file = certificate_file
        self._key_file = key_file
        self._passphrase = (passphrase_env, passphrase_file, passphrase_secret)
        self._lock = threading.Lock()
        self._loaded: tuple[bytes, ec.EllipticCurvePrivateKey] | None = None

    def _load(self) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._read()
            return self._loaded

    def _read(self) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        try:
            raw_certificate = Path(self._certificate_file).read_bytes()
            raw_key = Path(self._key_file).read_bytes()
        except OSError as error:
            raise PermanentEngineError(
                f"cannot read the seed certificate or key: {error}"
            ) from None
        password = (
            read_secret("seed key passphrase", *self._passphrase).encode()
            if any(self._passphrase)
            else None
        )
        try:
            certificate = (
                x509.load_pem_x509_certificate(raw_certificate)
                if b"-----BEGIN" in raw_certificate
                else x509.load_der_x509_certificate(raw_certificate)
            )
            load_key = (
                serialization.load_pem_private_key
                if b"-----BEGIN" in raw_key
                else serialization.load_der_private_key
            )
            key = load_key(raw_key, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise PermanentEngineError(
                f"cannot load the seed certificate {self._certificate_file} or key "
                f"{self._key_file}: {error}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PermanentEngineError("X509 tokens are ECDSA-signed: the seed key must be EC")
        if key.public_key() != certificate.public_key():
            raise PermanentEngineError(
                f"{self._key_file} is not the key of {self._certificate_file}"
            )
        return certificate.public_bytes(serialization.Encoding.DER), key

    def bearer(self) -> str:
        der, key = self._load()
        timestamp = str(int(time.time() * 1000))  # a string: it is signed as text
        nonce = random_text()
        signature = key.sign(
            der + timestamp.encode() + nonce.encode() + X509.encode(), ec.ECDSA(hashes.SHA256())
        )
        return _bearer(
            {
                "tokenType": X509,
                "certificate": _b64(der),
                "timestamp": timestamp,
                "nonce": nonce,
                "signature": _b64(signature),
            }
        )

    def forget(self) -> None:
        with self._lock:
            self._loaded = None
