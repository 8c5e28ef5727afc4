"""The EST door: one handler per RFC 7030 operation over the lifecycle core.

Each request is routed, size-capped, authenticated and only then parsed. Issuance goes through
`Lifecycle` like every other door (policy, intent record, events); a refusal is a short
text/plain 4xx and writes nothing. Nothing here logs a request body, credentials or a key.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certbridge import EngineError
from certplane.config import Profile
from certplane.enroll.est.auth import CHALLENGE, EstAuthenticator
from certplane.enroll.est.csrattrs import csr_attrs_der, profile_csr_attributes
from certplane.enroll.est.keygen import csr_for_key, generate_like, pkcs8_der
from certplane.enroll.est.media import (
    CSRATTRS,
    PKCS7,
    PKCS7_CERTS_ONLY,
    PKCS8,
    PKCS10,
    EstResponse,
    MethodNotAllowed,
    base64_body,
    decode_base64,
    headers_of,
    multipart_mixed,
    raw_body,
    require_media_type,
    text,
)
from certplane.enroll.est.routing import EstRoute, parse_route, resolve_profile
from certplane.enroll.pkcs7 import certs_only_der
from certplane.errors import CertplaneError, RequestRejected, ServiceUnavailable, Unauthorized
from certplane.inventory import CertificateRecord
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.policy import check_key, csr_public_key, load_csr, requested_sans
from certplane.runtime import Runtime
from certplane.workflows import approval

logger = logging.getLogger(__name__)

# Where the approval workflow is deployed (AWS, certplane dev), simpleenroll records the request
# and starts it (certplane.workflows.approval). Without it — and for simplereenroll and
# serverkeygen, whose key would have to wait with the request — a 202 only tells the client to
# come back, and nothing is recorded.
RETRY_AFTER_SECONDS = 3600
APPROVAL_RETRY_AFTER_SECONDS = 60
Event = Mapping[str, Any]
Operation = Callable[[EstRoute, Event, bytes], EstResponse]


def _error_response(error: CertplaneError) -> EstResponse:
    headers: dict[str, str] = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = CHALLENGE
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = error.allow
    return text(error.status, f"{error.code}: {error.message}", headers)


def _parse_without_checks(der: bytes) -> x509.CertificateSigningRequest:
    """The CSR's structure only; proof of possession is checked where it matters."""
    try:
        return x509.load_der_x509_csr(der)
    except ValueError:
        raise RequestRejected("malformed_csr", "the body is not a DER PKCS#10 request") from None


def _certificate(record: CertificateRecord) -> x509.Certificate:
    return x509.load_pem_x509_certificate((record.certificate_pem or "").encode())


def _issued(record: CertificateRecord) -> EstResponse:
    """RFC 7030 §4.2.3: a certs-only message holding just the issued certificate."""
    return base64_body(200, PKCS7_CERTS_ONLY, certs_only_der([_certificate(record)]))


def _pending(profile: Profile) -> EstResponse:
    return text(
        202,
        f"profile {profile.name} requires approval, and certplane has no approval workflow "
        "yet: nothing was recorded, and a retry gets this same answer",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _same_identity(
    csr: x509.CertificateSigningRequest, old: x509.Certificate, profile: Profile
) -> None:
    """RFC 7030 §4.2.2: re-enrollment keeps the subject and subjectAltNames (certplane does not
    support ChangeSubjectName). A SAN the profile derived from the CN may be left out."""
    if csr.subject != old.subject:
        raise RequestRejected(
            "subject_mismatch",
            f"re-enrollment must keep the subject {old.subject.rfc4514_string()!r}",
        )
    new, current = set(requested_sans(csr)), set(requested_sans(old))
    common_names = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(common_names[0].value) if common_names else None
    implied = {
        name
        for name in current - new
        if profile.common_name_in_san and str(name.value) == common_name
    }
    if new - current or current - new - implied:
        raise RequestRejected("san_mismatch", "re-enrollment must keep the current subjectAltNames")


class EstDoor:
    """EST (RFC 7030, with RFC 8951's clarifications) for one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.settings = runtime.settings
        self.lifecycle = runtime.lifecycle
        self.auth = EstAuthenticator(runtime.credentials, runtime.lifecycle.inventory)
        self.approvals = approval.Approvals(runtime.lifecycle)
        self._operations: dict[str, Operation] = {
            "cacerts": self._cacerts,
            "csrattrs": self._csrattrs,
            "simpleenroll": self._simpleenroll,
            "simplereenroll": self._simplereenroll,
            "serverkeygen": self._serverkeygen,
        }

    def handle(self, event: Event, context: Any = None) -> dict[str, Any]:
        """An API Gateway REST proxy event in, a proxy response out; never raises."""
        operation = "?"
        try:
            route = parse_route(str(event.get("httpMethod") or ""), str(event.get("path") or ""))
            operation = route.operation
            body = raw_body(event)
            response = self._operations[route.operation](route, event, body)
        except CertplaneError as error:
            logger.info("EST %s refused: %s %s", operation, error.status, error.code)
            response = _error_response(error)
        except Exception:
            logger.exception("EST %s failed unexpectedly", operation)
            response = text(500, "internal_error: the request could not be completed")
        return response.proxy()

    # -- operations -----------------------------------------------------------------------

    def _cacerts(self, route: EstRoute, event: Event, body: bytes) -> EstResponse:
        """RFC 7030 §4.1: the CA certificates of every engine the profile may sign with."""
        caller = self.auth.optional(event)
        profile = resolve_profile(self.settings, caller.tenant if caller else None, route.label)
        certificates: dict[bytes, x509.Certificate] = {}
        for engine_id in profile.route:
            try:
                chain = self.lifecycle.router.engine(engine_id).chain()
            except EngineError as error:
                raise ServiceUnavailable("ca_unavailable", f"CA {engine_id}: {error}") from None
            for certificate in chain:
                certificates[certificate.public_bytes(serialization.Encoding.DER)] = certificate
        # DER orders a SET OF by encoding (X.690 §11.6); for cacerts the order carries nothing.
        ordered = [certificates[der] for der in sorted(certificates)]
        return base64_body(200, PKCS7, certs_only_der(ordered))

    def _csrattrs(self, route: EstRoute, event: Event, body: bytes) -> EstResponse:
        """RFC 7030 §4.5: what the profile wants in a CSR; 204 when it asks for nothing."""
        caller = self.auth.optional(event)
        profile = resolve_profile(self.settings, caller.tenant if caller else None, route.label)
        elements = profile_csr_attributes(profile)
        if not elements:
            return EstResponse(204)
        return base64_body(200, CSRATTRS, csr_attrs_der(elements))

    def _simpleenroll(self, route: EstRoute, event: Event, body: bytes) -> EstResponse:
        caller = self.auth.enrolling(event)
        profile = resolve_profile(self.settings, caller.tenant, route.label)
        der = self._csr_der(event, body)
        request = IssueRequest(
            tenant=caller.tenant,
            profile=profile.name,
            csr=base64.b64encode(der).decode(),
            requester=caller.requester,
        )
        if profile.requires_approval:
            load_csr(der)  # a request that could never be approved is refused now
            if self.approvals.control_available:
                return self._approval(request, der)
            return _pending(profile)
        return _issued(self.lifecycle.issue(request))

    def _approval(self, request: IssueRequest, der: bytes) -> EstResponse:
        """RFC 7030 §4.2.3: 202 until a person decides; the repeated request then gets the
        certificate, or a refusal if it was denied."""
        item = self.approvals.submit_once(request, der)
        if item.status == approval.ISSUED and item.serial:
            record = self.lifecycle.inventory.get(request.tenant, int(item.serial, 16))
            if record is not None:
                return _issued(record)
        if item.status == approval.FAILED:
            failure = item.failure or {}
            raise RequestRejected(
                str(failure.get("code") or "approval_failed"),
                str(failure.get("message") or "the request was not approved"),
            )
        return text(
            202,
            f"approval {item.item_id} is {item.status.lower()}: repeat this request later",
            {"Retry-After": str(APPROVAL_RETRY_AFTER_SECONDS)},
        )

    def _simplereenroll(self, route: EstRoute, event: Event, body: bytes) -> EstResponse:
        """Renew the TLS client certificate: same profile, same subject, the CSR's new key."""
        caller = self.auth.reenrolling(event)
        previous = caller.current
        if previous is None or not previous.certificate_id:  # reenrolling() always sets it
            raise Unauthorized("unauthorized", "re-enrollment needs the current certificate")
        profile = self.settings.tenant_profile(caller.tenant, previous.profile)
        if profile is None:
            raise RequestRejected(
                "unknown_profile", f"profile {previous.profile} is no longer available"
            )
        if route.label is not None:
            labelled = resolve_profile(self.settings, caller.tenant, route.label)
            if labelled.name != profile.name:
                raise RequestRejected(
                    "profile_mismatch",
                    f"the current certificate belongs to profile {profile.name}, not "
                    f"{labelled.name}",
                )
        der = self._csr_der(event, body)
        _same_identity(_parse_without_checks(der), _certificate(previous), profile)
        if profile.requires_approval:
            load_csr(der)
            return _pending(profile)
        record = self.lifecycle.renew(
            RenewRequest(
                tenant=caller.tenant,
                reference=previous.certificate_id,
                requester=caller.requester,
                csr=base64.b64encode(der).decode(),
            )
        )
        return _issued(record)

    def _serverkeygen(self, route: EstRoute, event: Event, body: bytes) -> EstResponse:
        """RFC 7030 §4.4: the CSR names what to certify; the key is made here and returned
        once. Its signature and key are ignored (§4.4.1) except as the algorithm to use."""
        caller = self.auth.enrolling(event)
        profile = resolve_profile(self.settings, caller.tenant, route.label)
        template = _parse_without_checks(self._csr_der(event, body))
        wanted = csr_public_key(template)
        check_key(profile, wanted)
        if profile.requires_approval:
            return _pending(profile)
        key = generate_like(wanted)
        record = self.lifecycle.issue(
            IssueRequest(
                tenant=caller.tenant,
                profile=profile.name,
                csr=csr_for_key(template, key),
                requester=caller.requester,
            )
        )
        certs_only = certs_only_der([_certificate(record)])
        return multipart_mixed([(PKCS8, pkcs8_der(key)), (PKCS7_CERTS_ONLY, certs_only)])

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _csr_der(event: Event, body: bytes) -> bytes:
        require_media_type(headers_of(event), PKCS10)
        return decode_base64(body)
