"""From xPKI requests to the lifecycle's vocabulary: profiles, subjects, tags, reasons.

libCertifier's CSR has an empty subject; the device is named by `nodeAddress`, which becomes
the subject CN through `IssueRequest.subject_override` (and `dnsNames`/`ipAddresses`/`emails`
become the SANs through `san_override`). The profile still decides whether those names are
allowed, and the CSR signature still proves possession of the key.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from certplane.config import Profile, Settings
from certplane.enroll.certifier.authenticate import DeviceCaller
from certplane.enroll.certifier.models import CertificateBody
from certplane.errors import RequestRejected
from certplane.lifecycle import IssueRequest

# xPKI (Java enum) reason names → RFC 5280 §5.3.1 names. A device cannot assert that a CA or
# attribute authority was compromised, so those two are refused rather than mapped.
REVOKE_REASONS = {
    "UNSPECIFIED": "unspecified",
    "KEY_COMPROMISE": "keyCompromise",
    "AFFILIATION_CHANGED": "affiliationChanged",
    "SUPERSEDED": "superseded",
    "CESSATION_OF_OPERATION": "cessationOfOperation",
    "CERTIFICATE_HOLD": "certificateHold",
    "PRIVILEGE_WITHDRAWN": "privilegeWithdrawn",
}
_TAG_FIELDS = {
    "product_id": "productId",
    "node_id": "nodeId",
    "node_address": "nodeAddress",
    "system_id": "systemId",
    "fabric_id": "fabricId",
    "authenticated_tag1": "authenticatedTag1",
    "domain": "domain",
    "mac_address": "macAddress",
    "ledger_id": "ledgerId",
}


def rfc5280_reason(name: str) -> str:
    """`UNSPECIFIED`, `KEY_COMPROMISE`… (or the RFC 5280 spelling itself) → RFC 5280 name."""
    key = name.strip().upper().replace("-", "_") or "UNSPECIFIED"
    by_rfc_name = {value.upper(): value for value in REVOKE_REASONS.values()}
    reason = REVOKE_REASONS.get(key) or by_rfc_name.get(key.replace("_", ""))
    if reason is None:
        raise RequestRejected(
            "invalid_reason",
            f"unknown or not allowed revokeReason {name!r}; use one of {sorted(REVOKE_REASONS)}",
        )
    return reason


def select_profile(settings: Settings, tenant: str, name: str | None, lite: bool) -> Profile:
    """By name or alias; else the tenant's default; `lite` moves to the profile's lite variant."""
    profile = settings.tenant_profile(tenant, name) if name else None
    if profile is None:
        default = settings.tenants_by_id[tenant].default_profile
        profile = settings.tenant_profile(tenant, default) if default else None
        if profile is None:
            raise RequestRejected(
                "unknown_profile", f"profile {name!r} does not exist for tenant {tenant}"
            )
    if not lite:
        return profile
    if profile.lite_variant:
        variant = settings.tenant_profile(tenant, profile.lite_variant)
        if variant is None:
            raise RequestRejected(
                "lite_not_available",
                f"the compact variant of {profile.name} is not enabled for tenant {tenant}",
            )
        return variant
    if any(other.lite_variant == profile.name for other in settings.profiles):
        return profile  # already a compact variant
    raise RequestRejected(
        "lite_not_available", f"profile {profile.name} has no compact (certificateLite) variant"
    )


def _subject(node_address: str | None) -> str | None:
    if node_address is None:
        return None
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_address)]).rfc4514_string()


def _sans(body: CertificateBody) -> tuple[str, ...] | None:
    if not (body.dns_names or body.ip_addresses or body.emails):
        return None
    names = [f"DNS:{name.lower()}" for name in body.dns_names]
    for address in body.ip_addresses:
        try:
            names.append(f"IP:{ipaddress.ip_address(address)}")
        except ValueError:
            raise RequestRejected("san_not_allowed", f"{address!r} is not an IP address") from None
    names += [f"email:{email}" for email in body.emails]
    return tuple(names)


def _tags(body: CertificateBody, caller: DeviceCaller, source: str | None) -> dict[str, str]:
    tags = {
        tag: str(value)
        for field, tag in _TAG_FIELDS.items()
        if (value := getattr(body, field)) is not None
    }
    if body.use_scopes:
        tags["useScopes"] = "true"
    if body.certificate_lite:
        tags["certificateLite"] = "true"
    tags["xpkiAuth"] = caller.auth_type
    if caller.token_certificate_id:
        tags["xpkiSeedCertificateId"] = caller.token_certificate_id
    if source:
        tags["xpkiSource"] = source[:256]
    return tags


def issue_request(
    body: CertificateBody, caller: DeviceCaller, settings: Settings, source: str | None = None
) -> IssueRequest:
    """The lifecycle request for one POST /certificate."""
    profile = select_profile(settings, caller.tenant, body.profile_name, body.certificate_lite)
    return IssueRequest(
        tenant=caller.tenant,
        profile=profile.name,
        csr=body.csr,
        requester=caller.requester,
        validity_days=body.validity_days,
        device_id=body.node_id or body.node_address,
        tags=_tags(body, caller, source),
        subject_override=_subject(body.node_address),
        san_override=_sans(body),
    )
