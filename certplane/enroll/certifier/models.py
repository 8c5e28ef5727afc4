"""Request bodies of the xPKI Certifier API, as libCertifier v2.2.1 writes them.

The client pretty-prints with parson (`/` escaped as `\\/`, which any JSON parser undoes),
sends `validityDays` as a JSON number and `certificateLite`/`useScopes` as the STRING "true".
Unknown fields are ignored so newer clients keep working; known fields are typed and bounded.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
CertificateId = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-fA-F]{40}$")
]


class _Body(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class CertificateBody(_Body):
    """POST /certificate: a CSR (base64 DER, empty subject) and what names the device."""

    csr: str = Field(min_length=1, max_length=16384)
    profile_name: Text | None = None
    product_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,32}$")] | None = None
    node_address: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None
    ) = None
    node_id: Text | None = None
    system_id: Text | None = None
    fabric_id: Text | None = None
    authenticated_tag1: Text | None = None
    domain: Name | None = None
    mac_address: Text | None = None
    ledger_id: Text | None = None
    dns_names: list[Name] = Field(default_factory=list, max_length=20)
    ip_addresses: list[Text] = Field(default_factory=list, max_length=20)
    emails: list[Name] = Field(default_factory=list, max_length=20)
    validity_days: int | None = Field(default=None, ge=1, le=3650)
    certificate_lite: bool = False
    use_scopes: bool = False

    @field_validator("dns_names", "ip_addresses", "emails", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class RenewBody(_Body):
    """POST /renew: the certificate to renew for the same key."""

    certificate_id: CertificateId


class RevokeBody(_Body):
    """POST /revoke: the certificate and an xPKI reason name (UNSPECIFIED, KEY_COMPROMISE…)."""

    certificate_id: CertificateId
    revoke_reason: Annotated[str, StringConstraints(max_length=64)] = "UNSPECIFIED"
