"""A Python stand-in for libCertifier v2.2.1 on the wire (shared by service and e2e tests).

The wire format lives in `certplane.simulate.wire`, where the fleet simulator uses it too.
"""

from certplane.simulate.wire import (
    ALLOWABLE_CHARACTERS,
    SOURCE,
    b64,
    certificate_request,
    headers,
    libcertifier_csr,
    now_ms,
    pretty_json,
    random_value,
    revoke_request,
    sat_token,
    x509_token,
)

__all__ = [
    "ALLOWABLE_CHARACTERS",
    "SOURCE",
    "b64",
    "certificate_request",
    "headers",
    "libcertifier_csr",
    "now_ms",
    "pretty_json",
    "random_value",
    "revoke_request",
    "sat_token",
    "x509_token",
]
