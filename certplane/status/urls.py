"""Where status lives: the plain-HTTP URLs written into certificates and served back.

RFC 5280 practice: CDP and AIA URLs are `http://` — fetching revocation status must not
depend on TLS, whose own validation needs that status. The layout is the S3 key layout, so
CloudFront (AWS) and `certplane dev`'s status port serve the bucket as is:

    /crl/<ca>/<shard>.crl   one CRL shard (Issuing Distribution Point = this URL)
    /crl/<ca>.crl           the full CRL of a CA (small fleets)
    /ca/<ca>.cer            the issuing CA certificate, DER (AIA caIssuers)
    /ocsp                   the OCSP responder (GET /ocsp/<base64 request>, POST /ocsp)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from certplane.config import Profile, Settings

STATUS_URL_ENV = "CERTPLANE_STATUS_URL"


def crl_shard(serial: int, shards: int) -> int:
    """The CRL shard of a serial, fixed for the certificate's life (serials are random)."""
    return serial % shards


def shard_key(ca_id: str, shard: int) -> str:
    return f"crl/{ca_id}/{shard}.crl"


def full_key(ca_id: str) -> str:
    return f"crl/{ca_id}.crl"


def ca_certificate_key(ca_id: str) -> str:
    return f"ca/{ca_id}.cer"


@dataclass(frozen=True)
class StatusUrls:
    """The URLs under one status base (e.g. http://status.example.com or http://127.0.0.1:8080)."""

    base: str

    def url(self, key: str) -> str:
        return f"{self.base.rstrip('/')}/{key}"

    def crl_shard(self, ca_id: str, shard: int) -> str:
        return self.url(shard_key(ca_id, shard))

    def crl_full(self, ca_id: str) -> str:
        return self.url(full_key(ca_id))

    def ca_certificate(self, ca_id: str) -> str:
        return self.url(ca_certificate_key(ca_id))

    @property
    def ocsp(self) -> str:
        return self.url("ocsp")


def status_urls(settings: Settings, environ: dict[str, str] | None = None) -> StatusUrls | None:
    """The configured status base (env CERTPLANE_STATUS_URL first), or None when unset."""
    env = os.environ if environ is None else environ
    base = env.get(STATUS_URL_ENV) or settings.status.url
    return StatusUrls(base) if base else None


def status_extensions(
    profile: Profile, urls: StatusUrls | None, ca_id: str, serial: int, shards: int
) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    """CDP (the serial's shard) and AIA (OCSP, caIssuers) as the profile asks for them."""
    if urls is None:
        return ()
    extensions: list[x509.Extension[x509.ExtensionType]] = []
    if profile.crl:
        point = x509.DistributionPoint(
            full_name=[
                x509.UniformResourceIdentifier(urls.crl_shard(ca_id, crl_shard(serial, shards)))
            ],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        extensions.append(
            x509.Extension(
                x509.CRLDistributionPoints.oid, False, x509.CRLDistributionPoints([point])
            )
        )
    if profile.ocsp or profile.crl:
        access = []
        if profile.ocsp:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                )
            )
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(urls.ca_certificate(ca_id)),
            )
        )
        extensions.append(
            x509.Extension(
                x509.AuthorityInformationAccess.oid, False, x509.AuthorityInformationAccess(access)
            )
        )
    return tuple(extensions)
