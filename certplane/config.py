"""Tenants, certificate profiles and CA registrations, loaded from one TOML file.

The same file configures `certplane dev --config` and the CDK deployment, so a profile means
the same thing on a laptop and in the account.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certplane.events import DetailType

DEFAULT_CONFIG = "defaults/certplane.toml"
KEY_ALGORITHMS = ("P-256", "P-384", "Ed25519", "RSA")
# Post-quantum subject keys (FIPS 204) are accepted only where a profile lists them: the
# default stays classic so a profile written before ML-DSA existed does not start taking it.
KNOWN_KEY_ALGORITHMS = (*KEY_ALGORITHMS, "ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
EXTENDED_KEY_USAGES = ("serverAuth", "clientAuth", "codeSigning", "emailProtection")
SUBJECT_ATTRIBUTES = ("CN", "O", "OU", "C", "L", "ST", "serialNumber")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile_all(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        re.compile(pattern)
    return patterns


class SubjectRules(_Strict):
    """Which subject attributes a CSR may carry and what its common name must look like."""

    common_name_required: bool = True
    common_name_pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}"
    allowed_attributes: list[str] = Field(default_factory=lambda: ["CN"])

    @field_validator("allowed_attributes")
    @classmethod
    def _known_attributes(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(SUBJECT_ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown subject attributes {sorted(unknown)}")
        return value

    @field_validator("common_name_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class SanRules(_Strict):
    """Which subject alternative names are allowed; an empty list forbids that name type."""

    dns: list[str] = Field(default_factory=list)
    ip_ranges: list[str] = Field(default_factory=list)
    uri: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)
    max_names: int = Field(default=10, ge=0, le=100)
    required: bool = False

    _patterns = field_validator("dns", "uri", "email")(_compile_all)

    @field_validator("ip_ranges")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network)
        return value


class Profile(_Strict):
    """A certificate profile: what may be requested and what gets signed."""

    name: str
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    lite_variant: str | None = None
    requires_approval: bool = False
    # Only route engines signing with this algorithm (cryptography's name, e.g.
    # "ecdsa-with-SHA256", "ML-DSA-65") are used: changing it re-routes, clients unchanged.
    signature_algorithm: str | None = None
    key_identifier_bytes: int | None = Field(default=None, ge=8, le=20)
    serial_bytes: int = Field(default=16, ge=9, le=16)
    basic_constraints: bool = True
    key_algorithms: list[str] = Field(default_factory=lambda: list(KEY_ALGORITHMS))
    rsa_min_bits: int = Field(default=2048, ge=2048)
    subject: SubjectRules = Field(default_factory=SubjectRules)
    san: SanRules = Field(default_factory=SanRules)
    extended_key_usages: list[str] = Field(default_factory=lambda: ["clientAuth"])
    max_validity_days: int = Field(gt=0, le=3650)
    default_validity_days: int = Field(gt=0, le=3650)
    backdate_seconds: int = Field(default=300, ge=0, le=3600)
    common_name_in_san: bool = False
    # Status pointers written into each certificate (certplane.status): a CRL Distribution
    # Point naming the certificate's CRL shard, and an AIA OCSP URL. Off for profiles whose
    # certificates must stay tiny (compact) or are revoked by expiry alone (short-lived).
    crl: bool = True
    ocsp: bool = True
    # The renewal sweep (certplane.workflows) renews this profile's certificates for the same
    # key once fewer than `renew_before_days` remain; others only get "Certificate Expiring".
    auto_renew: bool = False
    renew_before_days: int = Field(default=30, ge=1, le=365)
    route: list[str] = Field(min_length=1)

    @field_validator("key_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(KNOWN_KEY_ALGORITHMS)
        if unknown:
            raise ValueError(
                f"unknown key algorithms {sorted(unknown)}; known: {KNOWN_KEY_ALGORITHMS}"
            )
        return value

    @field_validator("extended_key_usages")
    @classmethod
    def _known_ekus(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(EXTENDED_KEY_USAGES)
        if unknown:
            raise ValueError(f"unknown extended key usages {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.default_validity_days > self.max_validity_days:
            raise ValueError("default_validity_days exceeds max_validity_days")
        return self


class CARegistration(_Strict):
    """A certificate authority reachable through one CertBridge engine."""

    id: str
    engine: str
    name: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    # CRL shards of this CA (else `[status] crl_shards`). Fixed once certificates carry it:
    # a certificate's CDP names shard serial % crl_shards for its whole life.
    crl_shards: int | None = Field(default=None, ge=1, le=65536)


class StatusSettings(_Strict):
    """Revocation and status publishing (certplane.status): CRLs and OCSP."""

    # Base of the plain-HTTP status URLs (CDP, AIA); env CERTPLANE_STATUS_URL wins. Without
    # one, certificates carry no CDP/AIA (there is nowhere to point them).
    url: str | None = Field(default=None, pattern=r"^http://[^\s/?#]+(?:/[^\s?#]*)?$")
    crl_shards: int = Field(default=4, ge=1, le=65536)
    crl_full: bool = True  # also publish one whole CRL per CA (small fleets; off at scale)
    crl_validity_hours: int = Field(default=24, ge=1, le=24 * 30)
    crl_refresh_before_hours: int = Field(default=8, ge=0)
    ocsp_validity_hours: int = Field(default=12, ge=1, le=24 * 7)
    ocsp_signer_days: int = Field(default=30, ge=2, le=365)
    ocsp_signer_renew_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _windows(self) -> Self:
        if self.crl_refresh_before_hours >= self.crl_validity_hours:
            raise ValueError("crl_refresh_before_hours must be below crl_validity_hours")
        if self.ocsp_signer_renew_days >= self.ocsp_signer_days:
            raise ValueError("ocsp_signer_renew_days must be below ocsp_signer_days")
        return self


class WorkflowSettings(_Strict):
    """Step Functions workflows (certplane.workflows): thresholds, waits, retries, bounds.

    Wait and retry intervals really sleep in moto too: tests configure them down to 1 s.
    """

    # "Certificate Expiring" is announced once per certificate and threshold (days left).
    expiring_thresholds_days: list[Annotated[int, Field(ge=1, le=365)]] = Field(
        default_factory=lambda: [30, 14, 7, 1], min_length=1
    )
    # How far back the sweep looks for ISSUED certificates past notAfter (never swept yet).
    expired_lookback_days: int = Field(default=30, ge=1, le=365)
    sweep_page_size: int = Field(default=200, ge=1, le=1000)  # records per sweep step
    sweep_tenant_concurrency: int = Field(default=4, ge=1, le=40)
    sweep_schedule: str = "rate(1 day)"  # EventBridge Scheduler expression (AWS)
    dev_sweep_interval_minutes: float = Field(default=60, ge=0)  # certplane dev; 0: never
    retry_interval_seconds: int = Field(default=2, ge=1, le=3600)
    retry_max_attempts: int = Field(default=3, ge=0, le=10)
    retry_backoff_rate: float = Field(default=2.0, ge=1.0, le=10.0)
    approval_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=1, le=365 * 24 * 3600)
    bulk_max_concurrency: int = Field(default=10, ge=1, le=40)
    bulk_page_size: int = Field(default=100, ge=1, le=500)  # certificates per Map iteration


class Tenant(_Strict):
    """A tenant and the profiles its principals may use."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    name: str = ""
    profiles: list[str]
    default_profile: str | None = None


class ConnectorConfig(_Strict):
    """One integration of one tenant: which events go to which target (connectors/).

    The credential is never written here: `secret` names a Secrets Manager secret (what the
    deployed connector reads); `secret_env` / `secret_file` are for `certplane dev` only,
    pointing at a local variable or file. `filters` maps dotted detail paths to accepted
    values (`{"certificate.profile" = ["device"]}`); `options` go to the connector type.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")]
    tenant: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    secret: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    events: list[str] = Field(min_length=1)
    filters: dict[str, list[Any]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        known = {d.value for d in DetailType}
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown detail-types {unknown}; known: {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> Self:
        sources = [s for s in (self.secret, self.secret_env, self.secret_file) if s]
        if len(sources) > 1:
            raise ValueError(f"connector {self.name}: give one of secret, secret_env, secret_file")
        if self.secret and self.secret.startswith(("whsec_", "https://", "http://")):
            raise ValueError(
                f"connector {self.name}: `secret` is a Secrets Manager id, never the secret"
            )
        return self

    def local_secret(self) -> str | None:
        """The secret from `secret_env` / `secret_file` (certplane dev); None otherwise."""
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if value is None:
                raise ValueError(f"connector {self.name}: ${self.secret_env} is not set")
            return value
        if self.secret_file:
            return Path(self.secret_file).expanduser().read_text().strip()
        return None


class ApiPrincipal(_Strict):
    """An IAM identity allowed on the management API (`management_auth = iam`), and its tenant.

    `arn` is an IAM user or role ARN; a caller that assumed the role (an STS assumed-role ARN)
    matches the role by account and role name, as IAM itself compares them.
    """

    arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+$")]
    tenant: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    name: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["admin"])


class ApiAuthSettings(_Strict):
    """How the management API maps a caller the gateway authenticated to a tenant and roles.

    Used only when the stack sets CERTPLANE_API_AUTH to `jwt` or `iam` (CDK context
    `management_auth`); bearer tokens (`token`, the default and `certplane dev`) ignore it.
    """

    tenant_claim: str = "custom:tenant"  # JWT claim naming the caller's tenant
    roles_claims: list[str] = Field(default_factory=lambda: ["cognito:groups", "scope"])
    # Roles of a JWT caller whose roles claims are empty (tokens default to admin too).
    default_roles: list[str] = Field(default_factory=lambda: ["admin"])
    iam_principals: list[ApiPrincipal] = Field(default_factory=list)


class Settings(_Strict):
    """The whole configuration: tenants, profiles and CAs, cross-checked on load."""

    tenants: list[Tenant]
    profiles: list[Profile]
    cas: list[CARegistration]
    expiry_shards: int = Field(default=8, ge=1, le=256)
    idempotency_ttl_seconds: int = Field(default=30 * 24 * 3600, gt=0)
    status: StatusSettings = Field(default_factory=StatusSettings)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    api_auth: ApiAuthSettings = Field(default_factory=ApiAuthSettings)
    workflows: WorkflowSettings = Field(default_factory=WorkflowSettings)

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        ca_ids = {ca.id for ca in self.cas}
        profile_names = {profile.name for profile in self.profiles}
        for profile in self.profiles:
            missing = set(profile.route) - ca_ids
            if missing:
                raise ValueError(f"profile {profile.name} routes to unknown CAs {sorted(missing)}")
        for tenant in self.tenants:
            missing = set(tenant.profiles) - profile_names
            if missing:
                raise ValueError(f"tenant {tenant.id} names unknown profiles {sorted(missing)}")
            if tenant.default_profile and tenant.default_profile not in tenant.profiles:
                raise ValueError(f"tenant {tenant.id}: default profile is not one of its profiles")
        for profile in self.profiles:
            if profile.lite_variant and profile.lite_variant not in profile_names:
                raise ValueError(f"profile {profile.name}: unknown lite variant")
        tenant_ids = {tenant.id for tenant in self.tenants}
        for connector in self.connectors:
            if connector.tenant not in tenant_ids:
                raise ValueError(f"connector {connector.name}: unknown tenant {connector.tenant}")
        for principal in self.api_auth.iam_principals:
            if principal.tenant not in tenant_ids:
                raise ValueError(f"api_auth principal {principal.arn}: unknown tenant")
        connector_names = [connector.name for connector in self.connectors]
        if len(connector_names) != len(set(connector_names)):
            raise ValueError("connector names must be unique")
        names = [p.name for p in self.profiles] + [a for p in self.profiles for a in p.aliases]
        if len(names) != len(set(names)):
            raise ValueError("profile names and aliases must be unique")
        return self

    def crl_shards(self, ca_id: str) -> int:
        """How many CRL shards CA `ca_id` publishes (its own setting, else the global one)."""
        ca = next((ca for ca in self.cas if ca.id == ca_id), None)
        return (ca.crl_shards if ca and ca.crl_shards else None) or self.status.crl_shards

    @cached_property
    def profiles_by_name(self) -> dict[str, Profile]:
        return {profile.name: profile for profile in self.profiles}

    @cached_property
    def tenants_by_id(self) -> dict[str, Tenant]:
        return {tenant.id: tenant for tenant in self.tenants}

    def tenant_profiles(self, tenant_id: str) -> list[Profile]:
        tenant = self.tenants_by_id.get(tenant_id)
        if tenant is None:
            return []
        return [self.profiles_by_name[name] for name in tenant.profiles]

    def tenant_profile(self, tenant_id: str, profile_name: str) -> Profile | None:
        """The profile (by name or alias) if this tenant may use it.

        An unknown and a forbidden profile look alike to the caller.
        """
        tenant = self.tenants_by_id.get(tenant_id)
        if tenant is None:
            return None
        profile = self.profiles_by_name.get(profile_name) or next(
            (p for p in self.profiles if profile_name in p.aliases), None
        )
        if profile is None or profile.name not in tenant.profiles:
            return None
        return profile

    @classmethod
    def from_toml(cls, text: str) -> Settings:
        return cls.model_validate(tomllib.loads(text))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Settings:
        """Load `path`, or the packaged defaults (certplane/defaults/certplane.toml)."""
        if path:
            return cls.from_toml(Path(path).read_text())
        return cls.from_toml(resources.files("certplane").joinpath(DEFAULT_CONFIG).read_text())
