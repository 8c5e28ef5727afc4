"""Request bodies of the management API (validated by Powertools, published in OpenAPI)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueBody(_Body):
    """Issue a certificate for a CSR under a profile."""

    csr: str = Field(min_length=1, max_length=16384, description="PEM PKCS#10 request")
    profile: str = Field(min_length=1, max_length=64)
    validity_days: int | None = Field(default=None, ge=1, le=3650)
    device_id: str | None = Field(default=None, min_length=1, max_length=128)
    owner: str | None = Field(default=None, max_length=256)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=50)


class RenewBody(_Body):
    """Renew for the same key (no CSR) or for the key of a new CSR."""

    csr: str | None = Field(default=None, min_length=1, max_length=16384)
    validity_days: int | None = Field(default=None, ge=1, le=3650)


class RevokeBody(_Body):
    """Revoke with an RFC 5280 reason name (keyCompromise, superseded, …)."""

    reason: str = Field(default="unspecified", min_length=1, max_length=64)
