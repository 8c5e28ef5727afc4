"""Bearer tokens for the management API, stored only as SHA-256 hashes.

A token is 256 random bits, so a plain SHA-256 (not a slow password hash) is enough: the
table never holds anything that would let a reader authenticate.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import secrets
from dataclasses import dataclass

from pynamodb.attributes import ListAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

PRINCIPALS_TABLE_ENV = "CERTPLANE_PRINCIPALS_TABLE"
PRINCIPALS_TABLE_DEFAULT = "certplane-principals"
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: which tenant it acts for, and its name for the audit trail."""

    tenant: str
    name: str
    roles: tuple[str, ...] = ("admin",)


class ApiToken(Model):
    """A token hash and the principal it authenticates."""

    class Meta:
        table_name = os.environ.get(PRINCIPALS_TABLE_ENV, PRINCIPALS_TABLE_DEFAULT)
        billing_mode = "PAY_PER_REQUEST"

    token_hash = UnicodeAttribute(hash_key=True)
    tenant = UnicodeAttribute()
    principal = UnicodeAttribute()
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UTCDateTimeAttribute()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Creates tokens and resolves a presented token to its principal."""

    def register(self, token: str, tenant: str, principal: str, roles: tuple[str, ...]) -> None:
        ApiToken(
            token_hash=hash_token(token),
            tenant=tenant,
            principal=principal,
            roles=list(roles),
            created_at=datetime.datetime.now(datetime.UTC),
        ).save()

    def create(self, tenant: str, principal: str, roles: tuple[str, ...] = ("admin",)) -> str:
        """A new random token; only its hash is stored, so this is the one chance to read it."""
        token = secrets.token_urlsafe(32)
        self.register(token, tenant, principal, roles)
        return token

    def authenticate(self, token: str) -> Principal | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            record = ApiToken.get(hash_token(token))
        except ApiToken.DoesNotExist:
            return None
        return Principal(tenant=record.tenant, name=record.principal, roles=tuple(record.roles))
