"""The xPKI Certifier-compatible API (libCertifier v2.2.1) on a Powertools REST resolver.

libCertifier treats any HTTP status >= 400 as failure and never reads the body, so every
refusal is also logged here with the request's `x-xpki-tracking-id` and the reason: that log
line is what support reads. Errors leave as `{"error": {"code", "message", "trackingId"}}`;
nothing a client sends yields a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from cryptography import x509
from pydantic import BaseModel, ValidationError

from certplane.enroll.certifier.authenticate import CertifierAuthenticator
from certplane.enroll.certifier.lookup import xpki_status
from certplane.enroll.certifier.mapping import issue_request, rfc5280_reason
from certplane.enroll.certifier.models import CertificateBody, RenewBody, RevokeBody
from certplane.enroll.pkcs7 import certs_only_pem
from certplane.errors import CertplaneError, PayloadTooLarge, RequestRejected
from certplane.inventory import CertificateRecord
from certplane.lifecycle import RenewRequest
from certplane.model import CERTIFICATE_ID_PATTERN
from certplane.resources import CERTIFIER_API
from certplane.runtime import Runtime

SERVICE = CERTIFIER_API.environment["POWERTOOLS_SERVICE_NAME"]
logger = Logger(service=SERVICE, child=True)

PREFIX = "/v1/certifier"
MAX_BODY_BYTES = 64 * 1024
CHAIN_LENGTH = 3  # leaf, issuing CA, root: libCertifier accepts nothing else
TRACKING_HEADER = "x-xpki-tracking-id"
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
_Body = TypeVar("_Body", bound=BaseModel)


class UnsupportedChain(CertplaneError):
    """The CA route's chain is not issuing CA + root, so libCertifier could not use it."""

    status = 500


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {key.lower(): value for key, value in (event.get("headers") or {}).items()}


def tracking_id(event: dict[str, Any]) -> str:
    """The client's tracking id (sanitised for logs), else API Gateway's request id."""
    value = _headers(event).get(TRACKING_HEADER) or ""
    value = _UNSAFE.sub("", value)[:64]
    return value or str((event.get("requestContext") or {}).get("requestId") or "-")


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode())


def _error(status: int, code: str, message: str, tracking: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message, "trackingId": tracking}}),
        headers={TRACKING_HEADER: tracking},
    )


def _log_refusal(event: dict[str, Any], tracking: str, status: int, code: str, reason: str) -> None:
    logger.warning(
        f"certifier request refused: {event.get('httpMethod')} {event.get('path')} -> "
        f"{status} {code}: {reason} ({TRACKING_HEADER}={tracking})",
        extra={
            TRACKING_HEADER: tracking,
            "status": status,
            "code": code,
            "reason": reason,
            "path": event.get("path"),
        },
    )


def chain_reply(record: CertificateRecord) -> dict[str, str]:
    """`{"certificateId", "certificateChain"}`: a certs-only PKCS#7 of leaf, issuing CA, root."""
    leaf = x509.load_pem_x509_certificate((record.certificate_pem or "").encode())
    chain = x509.load_pem_x509_certificates((record.chain_pem or "").encode())
    certificates = [leaf, *chain]
    if len(certificates) != CHAIN_LENGTH:
        raise UnsupportedChain(
            "unsupported_chain",
            f"CA {record.ca_id} has a chain of {len(chain)} certificates; the xPKI API needs "
            "exactly an issuing CA and a root",
        )
    return {
        "certificateId": record.certificate_id or "",
        "certificateChain": certs_only_pem(certificates),
    }


class CertifierApi:
    """The Certifier API of one runtime: body limit, then the Powertools resolver."""

    def __init__(
        self, runtime: Runtime, authenticator: CertifierAuthenticator | None = None
    ) -> None:
        self.runtime = runtime
        self.authenticator = authenticator or CertifierAuthenticator(
            runtime.credentials, runtime.lifecycle.inventory
        )
        self.resolver = self._build_resolver()

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        tracking = tracking_id(event)
        if _body_size(event) > MAX_BODY_BYTES:
            error = PayloadTooLarge(
                "payload_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes"
            )
            _log_refusal(event, tracking, error.status, error.code, error.message)
            response = _error(error.status, error.code, error.message, tracking)
            return {
                "statusCode": response.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON, **response.headers},
                "body": response.body,
                "isBase64Encoded": False,
            }
        self.runtime.lifecycle.bind_lambda_context(context)
        self.resolver.append_context(tracking_id=tracking)
        return self.resolver.resolve(event, context)

    def _build_resolver(self) -> APIGatewayRestResolver:
        app = APIGatewayRestResolver()
        lifecycle = self.runtime.lifecycle
        settings = self.runtime.settings
        authenticator = self.authenticator

        def tracking() -> str:
            return app.context.get("tracking_id", "-")

        def header(name: str) -> str | None:
            return _headers(app.current_event.raw_event).get(name)

        def body(model: type[_Body]) -> _Body:
            event = app.current_event
            try:
                raw = (
                    base64.b64decode(event.body or "")
                    if event.is_base64_encoded
                    else (event.body or "").encode()
                )
                return model.model_validate_json(raw)
            except binascii.Error:
                raise RequestRejected("malformed_json", "the request body is not JSON") from None
            except ValidationError as error:
                problems = error.errors()
                if any(problem.get("type") == "json_invalid" for problem in problems):
                    raise RequestRejected(
                        "malformed_json", "the request body is not valid JSON"
                    ) from None
                details = "; ".join(
                    f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg')}"
                    for problem in problems[:10]
                )
                raise RequestRejected("invalid_request", details) from None

        def refuse(status: int, code: str, message: str) -> Response:
            _log_refusal(app.current_event.raw_event, tracking(), status, code, message)
            return _error(status, code, message, tracking())

        @app.exception_handler(CertplaneError)
        def _certplane_error(error: CertplaneError) -> Response:
            return refuse(error.status, error.code, error.message)

        @app.not_found
        def _not_found(_error: Exception) -> Response:
            return refuse(404, "not_found", "no such resource")

        @app.exception_handler(Exception)
        def _unexpected(error: Exception) -> Response:
            logger.exception(f"certifier request failed ({TRACKING_HEADER}={tracking()})")
            return _error(500, "internal_error", "an internal error occurred", tracking())

        def succeed(reply: dict[str, Any], action: str) -> Response:
            logger.info(
                f"certifier {action}: certificateId={reply.get('certificateId')} "
                f"({TRACKING_HEADER}={tracking()})",
                extra={TRACKING_HEADER: tracking(), "certificateId": reply.get("certificateId")},
            )
            return Response(
                status_code=200,
                content_type=content_types.APPLICATION_JSON,
                body=json.dumps(reply),
                headers={TRACKING_HEADER: tracking()},
            )

        @app.post(f"{PREFIX}/certificate")
        def enroll() -> Response:
            request = body(CertificateBody)
            caller = authenticator.enrollment_caller(header("authorization"))
            issue = issue_request(request, caller, settings, header("x-xpki-source"))
            return succeed(chain_reply(lifecycle.issue(issue)), "issued")

        @app.post(f"{PREFIX}/renew")
        def renew() -> Response:
            request = body(RenewBody)
            caller, record = authenticator.certificate_caller(
                header("authorization"), request.certificate_id
            )
            renewed = lifecycle.renew(
                RenewRequest(
                    tenant=record.tenant,
                    reference=record.certificate_id or request.certificate_id,
                    requester=caller.requester,
                )
            )
            return succeed(chain_reply(renewed), "renewed")

        @app.post(f"{PREFIX}/revoke")
        def revoke() -> Response:
            request = body(RevokeBody)
            reason = rfc5280_reason(request.revoke_reason)
            caller, record = authenticator.certificate_caller(
                header("authorization"), request.certificate_id
            )
            revoked = lifecycle.revoke(
                record.tenant, record.certificate_id or "", reason, caller.requester
            )
            reply = {
                "certificateId": revoked.certificate_id,
                "status": revoked.status,
                "revocationReason": revoked.revocation_reason,
            }
            return succeed(reply, "revoked")

        @app.route(f"{PREFIX}/certificate/status/<certificate_id>", method=["GET", "POST"])
        def status(certificate_id: str) -> Response:
            # Unauthenticated, like OCSP. An id we never issued is a well-formed question with
            # the answer UNKNOWN (200), which the client reports distinctly from a failure.
            if not CERTIFICATE_ID_PATTERN.match(certificate_id.lower()):
                raise RequestRejected(
                    "invalid_certificate_id", "a certificate id is 40 hex digits (SHA-1 of DER)"
                )
            answer = xpki_status(lifecycle.inventory.locate(certificate_id))
            return succeed({"certificateId": certificate_id.lower(), "status": answer}, "status")

        return app
