"""Credentials of every front door, in one table keyed by `<kind>#<lookup>`.

Each kind is found by what the caller presents, before the tenant is known: a bearer or SAT
token by its SHA-256, an EST user by name, a bootstrap CA by its key identifier, a nonce by
its value. Secrets are stored only as hashes (SHA-256 for 256-bit random tokens, scrypt for
passwords a person may choose); nonces expire through the table's TTL.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pynamodb.attributes import (
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError
from pynamodb.models import Model

PRINCIPALS_TABLE_ENV = "CERTPLANE_PRINCIPALS_TABLE"
PRINCIPALS_TABLE_DEFAULT = "certplane-principals"
MAX_SECRET_LENGTH = 1024
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class CredentialKind(StrEnum):
    API_TOKEN = "api-token"
    SAT = "sat"
    EST_USER = "est-user"
    BOOTSTRAP_CA = "bootstrap-ca"
    NONCE = "nonce"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: which tenant it acts for, and its name for the audit trail."""

    tenant: str
    name: str
    roles: tuple[str, ...] = ("admin",)


class Credential(Model):
    """One credential (or trust anchor, or used nonce) and the tenant it belongs to."""

    class Meta:
        table_name = os.environ.get(PRINCIPALS_TABLE_ENV, PRINCIPALS_TABLE_DEFAULT)
        billing_mode = "PAY_PER_REQUEST"

    key = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    tenant = UnicodeAttribute()
    principal = UnicodeAttribute(default="")
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    secret_hash = UnicodeAttribute(null=True)
    pem = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    expire_at = NumberAttribute(null=True)


def sha256_hex(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    scheme, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(_scrypt(password, base64.b64decode(salt)), base64.b64decode(digest))


def key_identifier(certificate: x509.Certificate) -> str:
    """A CA's subject key identifier (what its children's AKI names), hex."""
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ski.value.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest.hex()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CredentialStore:
    """Registers and checks credentials; every check answers a Principal or None."""

    @staticmethod
    def _get(kind: CredentialKind, lookup: str) -> Credential | None:
        try:
            return Credential.get(f"{kind.value}#{lookup}", consistent_read=True)
        except Credential.DoesNotExist:
            return None

    @staticmethod
    def _save(kind: CredentialKind, lookup: str, tenant: str, **fields: object) -> None:
        Credential(
            key=f"{kind.value}#{lookup}",
            kind=kind.value,
            tenant=tenant,
            created_at=_now(),
            **fields,
        ).save()

    # -- bearer tokens of the management API (and SATs of the Certifier API) --------------

    def register_token(
        self,
        token: str,
        tenant: str,
        principal: str,
        roles: tuple[str, ...] = ("admin",),
        kind: CredentialKind = CredentialKind.API_TOKEN,
    ) -> None:
        self._save(kind, sha256_hex(token), tenant, principal=principal, roles=list(roles))

    def create_token(
        self,
        tenant: str,
        principal: str,
        roles: tuple[str, ...] = ("admin",),
        kind: CredentialKind = CredentialKind.API_TOKEN,
    ) -> str:
        """A new random token; only its hash is stored, so this is the one chance to read it."""
        token = secrets.token_urlsafe(32)
        self.register_token(token, tenant, principal, roles, kind)
        return token

    def authenticate_token(
        self, token: str, kind: CredentialKind = CredentialKind.API_TOKEN
    ) -> Principal | None:
        if not token or len(token) > MAX_SECRET_LENGTH:
            return None
        record = self._get(kind, sha256_hex(token))
        if record is None:
            return None
        return Principal(tenant=record.tenant, name=record.principal, roles=tuple(record.roles))

    # -- EST enrollment users (HTTP Basic) ------------------------------------------------

    def set_password(self, tenant: str, username: str, password: str) -> None:
        self._save(
            CredentialKind.EST_USER,
            username,
            tenant,
            principal=username,
            roles=["enroll"],
            secret_hash=hash_password(password),
        )

    def authenticate_password(self, username: str, password: str) -> Principal | None:
        if not username or len(username) > 256 or len(password) > MAX_SECRET_LENGTH:
            return None
        record = self._get(CredentialKind.EST_USER, username)
        if record is None or not record.secret_hash:
            hash_password(password)  # spend the same time whether or not the user exists
            return None
        if not verify_password(password, record.secret_hash):
            return None
        return Principal(tenant=record.tenant, name=username, roles=tuple(record.roles))

    # -- bootstrap CAs that sign factory "seed" certificates ------------------------------

    def trust_bootstrap_ca(self, tenant: str, certificate: x509.Certificate) -> None:
        self._save(
            CredentialKind.BOOTSTRAP_CA,
            key_identifier(certificate),
            tenant,
            principal=certificate.subject.rfc4514_string(),
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        )

    def bootstrap_ca(self, key_id_hex: str) -> tuple[str, x509.Certificate] | None:
        """The tenant trusting the bootstrap CA with this key identifier, and that CA."""
        record = self._get(CredentialKind.BOOTSTRAP_CA, key_id_hex.lower())
        if record is None or not record.pem:
            return None
        return record.tenant, x509.load_pem_x509_certificate(record.pem.encode())

    # -- replay protection ----------------------------------------------------------------

    def claim_nonce(self, tenant: str, scope: str, nonce: str, ttl: datetime.timedelta) -> bool:
        """True the first time (scope, nonce) is seen within `ttl`; False for a replay."""
        lookup = f"{tenant}#{scope}#{sha256_hex(nonce)}"
        expires = int((_now() + ttl).timestamp())
        record = Credential(
            key=f"{CredentialKind.NONCE.value}#{lookup}",
            kind=CredentialKind.NONCE.value,
            tenant=tenant,
            created_at=_now(),
            expire_at=expires,
        )
        try:
            record.save(
                condition=Credential.key.does_not_exist()
                | (Credential.expire_at < int(_now().timestamp()))
            )
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
