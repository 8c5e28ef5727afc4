"""Management API routes on a Powertools REST resolver.

Body size and the bearer token are checked before the resolver runs (Powertools validates a
body before any user middleware), so an unauthenticated caller learns nothing about schemas.
Every error leaves as `{"error": {"code", "message"}}`; nothing a client sends yields a 5xx.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import asdict
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from cryptography.hazmat.primitives import serialization

from certplane.api import workflow_routes
from certplane.api.models import IssueBody, RenewBody, RevokeBody
from certplane.api.views import certificate_view, profile_view
from certplane.api.workflow_routes import Workflows
from certplane.auth import Principal
from certplane.auth.gateway import AuthMode, auth_mode, gateway_principal
from certplane.errors import CertplaneError, PayloadTooLarge, Unauthorized
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.model import iso_timestamp
from certplane.runtime import Runtime
from certplane.workflows.approval import approval_view

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PUBLIC_PATHS = {"/health", "/v1/openapi.json"}


def error_response(status: int, code: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
    )


def _validation_message(error: RequestValidationError) -> tuple[int, str, str]:
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return 400, "malformed_json", "the request body is not valid JSON"
    details = "; ".join(
        f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', 'invalid')}"
        for problem in problems[:10]
    )
    return 422, "invalid_request", details or "the request is invalid"


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode())


def _bearer_token(event: dict[str, Any]) -> str | None:
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ManagementApi:
    """The management API of one runtime: gatekeeping, then the Powertools resolver."""

    def __init__(self, runtime: Runtime, auth: AuthMode | None = None) -> None:
        self.runtime = runtime
        # Who authenticates callers: the function (tokens) or the gateway (jwt, iam).
        self.auth = auth if auth is not None else auth_mode(os.environ)
        self.resolver = _build_resolver(runtime)

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        refusal = self._gate(event)
        if refusal is not None:
            return {
                "statusCode": refusal.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": refusal.body,
                "isBase64Encoded": False,
            }
        self.runtime.lifecycle.bind_lambda_context(context)
        return self.resolver.resolve(event, context)

    def _gate(self, event: dict[str, Any]) -> Response | None:
        try:
            if _body_size(event) > MAX_BODY_BYTES:
                raise PayloadTooLarge(
                    "payload_too_large", f"the request body exceeds {MAX_BODY_BYTES} bytes"
                )
            if event.get("path") in PUBLIC_PATHS:
                return None
            principal = self._principal(event)
        except CertplaneError as error:
            return error_response(error.status, error.code, error.message)
        self.resolver.append_context(principal=principal)
        return None

    def _principal(self, event: dict[str, Any]) -> Principal:
        if self.auth is not AuthMode.TOKEN:
            return gateway_principal(event, self.auth, self.runtime.settings.api_auth)
        token = _bearer_token(event)
        principal = self.runtime.credentials.authenticate_token(token) if token else None
        if principal is None:
            raise Unauthorized("unauthorized", "a valid bearer token is required")
        return principal


def _build_resolver(runtime: Runtime) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    lifecycle = runtime.lifecycle
    workflows = Workflows(runtime)

    def principal() -> Principal:
        return app.context["principal"]

    def idempotency_key() -> str | None:
        key = app.current_event.headers.get("idempotency-key") or app.current_event.headers.get(
            "Idempotency-Key"
        )
        return key[:256] if key else None

    @app.exception_handler(CertplaneError)
    def _certplane_error(error: CertplaneError) -> Response:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        return error_response(*_validation_message(error))

    @app.not_found
    def _not_found(_error: Exception) -> Response:
        return error_response(404, "not_found", "no such resource")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "an internal error occurred")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/openapi.json")
    def openapi() -> Response[str]:
        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=app.get_openapi_json_schema(
                title="certplane management API",
                version="1",
                security_schemes={"bearer": HTTPBearer()},
                security=[{"bearer": []}],
            ),
        )

    @app.post("/v1/certificates")
    def issue(body: IssueBody) -> tuple[dict[str, Any], int]:
        caller = principal()
        request = IssueRequest(
            tenant=caller.tenant,
            requester=caller.name,
            idempotency_key=idempotency_key(),
            **body.model_dump(),
        )
        if workflows.requires_approval(request):  # 202: decided at /v1/approvals/{id}
            return {"approval": approval_view(workflows.approvals.submit(request))}, 202
        record = lifecycle.issue(request)
        return certificate_view(record, with_pem=True), 201

    @app.get("/v1/certificates")
    def list_certificates(
        status: Annotated[str | None, Query(max_length=16)] = None,
        profile: Annotated[str | None, Query(max_length=64)] = None,
        device: Annotated[str | None, Query(max_length=128)] = None,
        expiring_before: Annotated[datetime.datetime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> dict[str, Any]:
        if expiring_before is not None and expiring_before.tzinfo is None:
            expiring_before = expiring_before.replace(tzinfo=datetime.UTC)
        page = lifecycle.inventory.list(
            principal().tenant,
            status=status.upper() if status else None,
            profile=profile,
            device_id=device,
            expiring_before=expiring_before,
            limit=limit,
            cursor=cursor,
        )
        return {
            "items": [certificate_view(record) for record in page.items],
            "next_cursor": page.cursor,
        }

    @app.get("/v1/certificates/<reference>")
    def get_certificate(reference: str) -> dict[str, Any]:
        return certificate_view(lifecycle.get(principal().tenant, reference), with_pem=True)

    @app.post("/v1/certificates/<reference>/renew")
    def renew(reference: str, body: RenewBody) -> tuple[dict[str, Any], int]:
        caller = principal()
        record = lifecycle.renew(
            RenewRequest(
                tenant=caller.tenant,
                reference=reference,
                requester=caller.name,
                idempotency_key=idempotency_key(),
                **body.model_dump(),
            )
        )
        return certificate_view(record, with_pem=True), 201

    @app.post("/v1/certificates/<reference>/revoke")
    def revoke(reference: str, body: RevokeBody) -> dict[str, Any]:
        caller = principal()
        record = lifecycle.revoke(caller.tenant, reference, body.reason, caller.name)
        return certificate_view(record)

    @app.get("/v1/profiles")
    def profiles() -> dict[str, Any]:
        return {"items": [profile_view(p) for p in lifecycle.profiles(principal().tenant)]}

    @app.get("/v1/cas")
    def cas() -> dict[str, Any]:
        tenant_routes = {ca for p in lifecycle.profiles(principal().tenant) for ca in p.route}
        items = []
        for registration in runtime.settings.cas:
            if registration.id not in tenant_routes:
                continue
            engine = lifecycle.router.engine(registration.id)
            capabilities = asdict(engine.capabilities())
            capabilities["max_validity_days"] = capabilities.pop("max_validity").days
            capabilities["ca_not_after"] = iso_timestamp(capabilities["ca_not_after"])
            items.append(
                {
                    "id": registration.id,
                    "name": registration.name,
                    "engine": registration.engine,
                    "capabilities": capabilities,
                    "chain_pem": "".join(
                        c.public_bytes(serialization.Encoding.PEM).decode() for c in engine.chain()
                    ),
                }
            )
        return {"items": items}

    workflow_routes.register(app, workflows, principal)
    return app
