"""EST paths: `/.well-known/est/<op>` and `/.well-known/est/<label>/<op>` (RFC 7030 §3.2.2).

A label names a certificate profile (by name or alias); without one, the tenant's default
profile applies. Unknown paths and labels are 404, a wrong method is 405 with `Allow`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certplane.config import Profile, Settings
from certplane.enroll.est.media import MethodNotAllowed
from certplane.errors import NotFound, Unauthorized

PREFIX = "/.well-known/est/"
METHODS = {
    "cacerts": "GET",
    "csrattrs": "GET",
    "simpleenroll": "POST",
    "simplereenroll": "POST",
    "serverkeygen": "POST",
}
LABEL = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


@dataclass(frozen=True)
class EstRoute:
    operation: str
    label: str | None


def parse_route(method: str, path: str) -> EstRoute:
    if not path.startswith(PREFIX):
        raise NotFound("not_found", "no such EST resource")
    segments = path[len(PREFIX) :].split("/")
    if len(segments) == 1:
        label, operation = None, segments[0]
    elif len(segments) == 2 and LABEL.match(segments[0]):
        label, operation = segments
    else:
        raise NotFound("not_found", "no such EST resource")
    expected = METHODS.get(operation)
    if expected is None:
        raise NotFound("not_found", f"EST has no operation {operation!r}")
    if method.upper() != expected:
        raise MethodNotAllowed(operation, expected)
    return EstRoute(operation, label)


def _global_profile(settings: Settings, label: str) -> Profile | None:
    return settings.profiles_by_name.get(label) or next(
        (p for p in settings.profiles if label in p.aliases), None
    )


def resolve_profile(settings: Settings, tenant: str | None, label: str | None) -> Profile:
    """The profile a request addresses; `tenant` is None for an anonymous cacerts/csrattrs.

    Anonymous callers see only what does not depend on who asks: a labelled profile's CA
    chain and attributes, or the default profile when the deployment has one tenant.
    """
    if tenant is None:
        if label is not None:
            profile = _global_profile(settings, label)
            if profile is None:
                raise NotFound("unknown_label", f"no EST label {label!r}")
            return profile
        if len(settings.tenants) != 1:
            raise Unauthorized(
                "unauthorized", "authenticate (or use a profile label) to choose the tenant"
            )
        tenant = settings.tenants[0].id
    if label is None:
        known = settings.tenants_by_id.get(tenant)
        default = known.default_profile if known else None
        if default is None:
            raise NotFound(
                "no_default_profile",
                "this tenant has no default profile; use /.well-known/est/<profile>/<operation>",
            )
        label = default
    profile = settings.tenant_profile(tenant, label)
    if profile is None:
        raise NotFound("unknown_label", f"no EST label {label!r}")
    return profile
