"""Local stand-ins for connector targets, checking requests as the real services do.

Each receiver is an http.server on 127.0.0.1 (a free port) enforcing only the [V] facts of
notes/vendor-apis.md: path, method, auth, required fields, payload shape; answering with the
service's documented status codes and bodies. Plus builders of valid certplane events.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from certplane.events import SOURCE, DetailType, build_detail, validate_detail

Reply = tuple[int, dict[str, str], bytes]

# -- events ------------------------------------------------------------------------------


def certificate(subject: str = "device-0001", **changes: Any) -> dict[str, Any]:
    """An issued certificate summary valid under common.json#issuedCertificate."""
    der_sha1 = hashlib.sha1(subject.encode() + secrets.token_bytes(8)).hexdigest()
    summary = {
        "certificateId": der_sha1,
        "serial": secrets.token_hex(16),
        "status": "ISSUED",
        "issuer": "CN=certplane dev issuing CA",
        "subject": f"CN={subject}",
        "sans": [],
        "profile": "device",
        "ca": "local-dev",
        "keyAlgorithm": "P-256",
        "notBefore": "2026-12-01T00:00:00Z",
        "notAfter": "2027-12-01T00:00:00Z",
        "fingerprints": {"sha256": hashlib.sha256(der_sha1.encode()).hexdigest(), "sha1": der_sha1},
        "deviceId": subject,
        "owner": None,
        "tags": {},
    }
    summary.update(changes)
    return summary


def detail(detail_type: DetailType, tenant: str = "acme", **body: Any) -> dict[str, Any]:
    """A schema-valid detail; type-specific fields default to something plausible."""
    defaults: dict[DetailType, dict[str, Any]] = {
        DetailType.ISSUED: {"certificate": certificate()},
        DetailType.EXPIRING: {"certificate": certificate(), "daysRemaining": 7, "threshold": 30},
        DetailType.REVOKED: {
            "certificate": certificate(status="REVOKED"),
            "revocation": {"reason": "keyCompromise", "revokedAt": "2026-12-04T10:00:00Z"},
        },
        DetailType.RENEWED: {
            "certificate": certificate(),
            "previousCertificate": certificate(status="SUPERSEDED"),
            "sameKey": False,
        },
        DetailType.ISSUANCE_FAILED: {
            "failure": {
                "code": "engine_unavailable",
                "message": "KMS timed out",
                "stage": "signing",
            },
            "request": {"profile": "device", "operation": "issue", "deviceId": "device-9"},
        },
        DetailType.CA_UNAVAILABLE: {"ca": "local-dev", "engine": "kms", "error": "throttled"},
    }
    value = build_detail(tenant, "tests", **{**defaults.get(detail_type, {}), **body})
    validate_detail(detail_type, value)
    return value


def envelope(detail_type: DetailType, value: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event a rule target receives."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type.value,
        "source": SOURCE,
        "account": "123456789012",
        "time": value["occurredAt"][:19] + "Z",
        "region": "us-east-1",
        "resources": [],
        "detail": value,
    }


# -- the HTTP server ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LocalTarget:
    """A threaded HTTP server whose answers come from `respond`; can go down and come back.

    `down()` really closes the socket (connection refused) and `up()` binds the same port.
    """

    def __init__(self, respond: Callable[[Request], Reply]) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                target.requests.append(request)
                status, headers, body = target.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_PUT = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()


def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> Reply:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(document).encode(),
    )


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "text/plain", **(headers or {})}, text.encode()


# -- Standard Webhooks receiver ----------------------------------------------------------


def verify_standard_webhook(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: int = 300
) -> None:
    """Written from the spec (standard-webhooks.md), independently of connectors.webhook."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if not timestamp.isdigit():
        raise ValueError("timestamp is not integer seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise ValueError("timestamp outside tolerance")
    if "." in msg_id or "." in timestamp:
        raise ValueError("id or timestamp contains '.'")
    key = base64.b64decode(secret[len("whsec_") :])
    to_sign = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())
    for item in headers["webhook-signature"].split(" "):
        version, _, signature = item.partition(",")
        if version != "v1":
            continue  # unknown versions are skipped
        if hmac.compare_digest(signature.encode(), expected):
            return
    raise ValueError("no matching v1 signature")


@dataclass
class WebhookReceiver:
    """Verifies signatures, dedupes on webhook-id, and can be told to fail."""

    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    path: str = "/hooks/certplane"
    mode: str = "ok"  # "ok" | "503" | "429"
    retry_after: str = ""  # a Retry-After header on 429 and 503 answers
    reject_subject: str | None = None  # answer 400 for events about this subject
    accepted: Counter = field(default_factory=Counter)  # webhook-id -> 2xx answers
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)  # deduped payloads
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url + self.path

    def respond(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != self.path:
            return _text(404, "not found")
        hint = {"Retry-After": self.retry_after} if self.retry_after else {}
        if self.mode == "503":
            return _text(503, "maintenance", hint)
        if self.mode == "429":
            return _text(429, "slow down", hint)
        try:
            if not request.headers.get("content-type", "").startswith("application/json"):
                raise ValueError("content-type is not JSON")
            verify_standard_webhook(self.secret, request.headers, request.body, time.time())
            document = json.loads(request.body)
            assert isinstance(document["type"], str) and document["type"]
            assert isinstance(document["data"], dict)
            datetime.datetime.fromisoformat(document["timestamp"])
        except (KeyError, ValueError, AssertionError) as error:
            self.failures.append(repr(error))
            return _text(401 if "signature" in repr(error) else 400, repr(error))
        subject = (document["data"].get("certificate") or {}).get("subject")
        if self.reject_subject and subject == f"CN={self.reject_subject}":
            return _json(400, {"error": "unprocessable certificate"})
        msg_id = request.headers["webhook-id"]
        self.accepted[msg_id] += 1
        self.processed.setdefault(msg_id, document)  # a receiver processes an id once
        return _text(200, "")

    def close(self) -> None:
        self.target.close()


# -- Slack incoming webhook --------------------------------------------------------------


@dataclass
class SlackReceiver:
    """hooks.slack.com/services/T…/B…/…: JSON with text (+ blocks within Block Kit limits)."""

    path: str = "/services/T0001/B0001/" + secrets.token_hex(12)
    throttle: int = 0  # answer 429 this many times first
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url + self.path

    def respond(self, request: Request) -> Reply:
        if request.method != "POST":
            return _text(405, "invalid_method")
        if request.path != self.path:
            return _text(404, "no_service")
        if self.throttle:
            self.throttle -= 1
            return _text(429, "rate_limited", {"Retry-After": "1"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _text(400, "invalid_payload")
        try:
            document = json.loads(request.body)
        except ValueError:
            return _text(400, "invalid_payload")
        if not isinstance(document, dict) or not document.get("text"):
            return _text(400, "no_text")
        for name in ("channel", "username", "icon_emoji", "icon_url"):
            if name in document:  # app webhooks cannot override these
                return _text(400, "invalid_payload")
        if not _valid_blocks(document.get("blocks", [])):
            return _text(400, "invalid_blocks")
        self.messages.append(document)
        return _text(200, "ok")

    def close(self) -> None:
        self.target.close()


def _valid_blocks(blocks: Any) -> bool:
    if not isinstance(blocks, list) or len(blocks) > 50:
        return False
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or not 0 < len(text["text"]) <= 150:
                return False
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                return False
            if "text" in block and not 0 < len(block["text"]["text"]) <= 3000:
                return False
            fields = block.get("fields", [])
            if len(fields) > 10 or any(not 0 < len(f["text"]) <= 2000 for f in fields):
                return False
        elif kind == "context":
            if not 0 < len(block["elements"]) <= 10:
                return False
        elif kind not in ("divider", "actions", "image", "rich_text"):
            return False
        if len(block.get("block_id", "")) > 255:
            return False
    return True


# -- PagerDuty Events API v2 -------------------------------------------------------------

SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class PagerDutyReceiver:
    """POST /v2/enqueue: routing_key in the body, no auth header; 202 / 400 as documented."""

    routing_key: str = field(default_factory=lambda: secrets.token_hex(16))
    alerts: dict[str, str] = field(default_factory=dict)  # dedup_key -> triggered|resolved
    triggers: Counter = field(default_factory=Counter)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url + "/v2/enqueue"

    def respond(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return _json(404, {"status": "not found"})
        errors = self._errors(request)
        if errors:
            return _json(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
        document = json.loads(request.body)
        key = document.get("dedup_key") or secrets.token_hex(16)
        self.events.append(document)
        if document["event_action"] == "trigger":
            self.triggers[key] += 1
            self.alerts[key] = "triggered"
        elif document["event_action"] == "resolve" and key in self.alerts:
            self.alerts[key] = "resolved"
        return _json(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _errors(self, request: Request) -> list[str]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return ["Content-Type must be application/json"]
        try:
            document = json.loads(request.body)
        except ValueError:
            return ["Invalid JSON"]
        errors = []
        if document.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = document.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if action in ("acknowledge", "resolve") and not document.get("dedup_key"):
            errors.append("'dedup_key' is missing")
        if action == "trigger":
            payload = document.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
            if "timestamp" in payload:
                try:
                    datetime.datetime.fromisoformat(payload["timestamp"])
                except ValueError:
                    errors.append("'payload.timestamp' is invalid")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("'payload.custom_details' is invalid")
        return errors

    def close(self) -> None:
        self.target.close()


# -- Splunk HTTP Event Collector ---------------------------------------------------------

HEC_PATHS = ("/services/collector/event", "/services/collector", "/services/collector/event/1.0")


def _hec(status: int, text: str, code: int, **extra: Any) -> Reply:
    return _json(status, {"text": text, "code": code, **extra})


@dataclass
class SplunkReceiver:
    """HEC: `Authorization: Splunk <token>`; concatenated JSON objects, each with `event`."""

    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    indexes: tuple[str, ...] = ("main", "pki")
    busy: int = 0  # answer 503 code 9 this many times first
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    def respond(self, request: Request) -> Reply:
        if request.method != "POST" or request.path.split("?")[0] not in HEC_PATHS:
            return _hec(404, "The requested URL was not found on this server.", 404)
        auth = request.headers.get("authorization")
        if not auth:
            return _hec(401, "Token is required", 2)
        scheme, _, token = auth.partition(" ")
        if scheme != "Splunk":
            return _hec(401, "Invalid authorization", 3)
        if token != self.token:
            return _hec(403, "Invalid token", 4)
        if self.busy:
            self.busy -= 1
            return _hec(503, "Server is busy", 9)
        self.requests += 1
        objects, error = _parse_hec(request.body.decode(), self.indexes)
        if error:
            return error
        self.events.extend(objects)
        return _hec(200, "Success", 0)

    def close(self) -> None:
        self.target.close()


def _parse_hec(text: str, indexes: tuple[str, ...]) -> tuple[list[dict[str, Any]], Reply | None]:
    decoder = json.JSONDecoder()
    position, objects = 0, []
    if not text.strip():
        return [], _hec(400, "No data", 5)
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            return [], _hec(400, "Invalid data format", 6, **{"invalid-event-number": len(objects)})
        number = len(objects)
        if not isinstance(value, dict):  # a JSON array is not a batch
            return [], _hec(400, "Invalid data format", 6, **{"invalid-event-number": number})
        if "event" not in value:
            return [], _hec(400, "Event field is required", 12, **{"invalid-event-number": number})
        if value["event"] in ("", {}, None):
            return [], _hec(400, "Event field cannot be blank", 13)
        if "time" in value:
            try:
                float(value["time"])
            except (TypeError, ValueError):
                return [], _hec(400, "Invalid data format", 6, **{"invalid-event-number": number})
        if "index" in value and value["index"] not in indexes:
            return [], _hec(400, "Incorrect index", 7, **{"invalid-event-number": number})
        for item in (value.get("fields") or {}).values():
            flat = isinstance(item, str) or (
                isinstance(item, list) and all(isinstance(v, str) for v in item)
            )
            if not flat:
                return [], _hec(400, "Error in handling indexed fields", 15)
        objects.append(value)
    return objects, None


# -- GitHub repository_dispatch ----------------------------------------------------------

GITHUB_API_VERSIONS = ("2022-11-28", "2026-03-10")


@dataclass
class GitHubReceiver:
    """POST /repos/{owner}/{repo}/dispatches → 204; event_type 1-100, client_payload ≤ 10 keys."""

    owner: str = "acme"
    repo: str = "fleet-config"
    token: str = field(default_factory=lambda: "github_pat_" + secrets.token_hex(20))
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return f"{self.target.url}/repos/{self.owner}/{self.repo}"

    def respond(self, request: Request) -> Reply:
        if request.path != f"/repos/{self.owner}/{self.repo}/dispatches":
            return _json(404, {"message": "Not Found"})
        if request.method != "POST":
            return _json(404, {"message": "Not Found"})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme not in ("Bearer", "token") or token != self.token:
            return _json(401, {"message": "Bad credentials"})
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in GITHUB_API_VERSIONS:
            return _json(400, {"message": f"Unsupported API version {version}"})
        try:
            document = json.loads(request.body)
        except ValueError:
            return _json(400, {"message": "Problems parsing JSON"})
        event_type = document.get("event_type")
        payload = document.get("client_payload", {})
        if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
            return _json(422, {"message": "Invalid request.", "errors": ["event_type"]})
        if not isinstance(payload, dict) or len(payload) > 10:
            return _json(422, {"message": "Invalid request.", "errors": ["client_payload"]})
        if len(json.dumps(payload).encode()) >= 64 * 1024:
            return _json(422, {"message": "client_payload is too large"})
        self.dispatches.append(document)
        return 204, {}, b""

    def close(self) -> None:
        self.target.close()


# -- Microsoft Teams Workflows webhook ---------------------------------------------------

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_ELEMENTS = ("TextBlock", "FactSet", "ColumnSet", "Container", "Image", "RichTextBlock")


def adaptive_card_errors(document: Any) -> list[str]:
    """What a Workflows flow run would fail on (the HTTP caller still gets 202)."""
    errors: list[str] = []
    if not isinstance(document, dict) or document.get("type") != "message":
        return ["Property 'type' must be 'message'"]
    attachments = document.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return ["'attachments' must be a non-empty array"]
    for attachment in attachments:
        if attachment.get("contentType") != ADAPTIVE_CARD:
            errors.append("only Adaptive Cards are supported (contentType)")
            continue
        content = attachment.get("content") or {}
        if content.get("type") != "AdaptiveCard":
            errors.append("Property 'type' must be 'AdaptiveCard'")
        if not isinstance(content.get("version"), str):
            errors.append("'version' is required")
        body = content.get("body")
        if not isinstance(body, list):
            errors.append("'body' must be an array")
            continue
        for element in body:
            kind = element.get("type")
            if kind not in CARD_ELEMENTS:
                errors.append(f"unknown element type {kind!r}")
            elif kind == "TextBlock" and not isinstance(element.get("text"), str):
                errors.append("TextBlock needs 'text'")
            elif kind == "FactSet":
                facts = element.get("facts")
                if not isinstance(facts, list) or any(
                    not isinstance(f.get("title"), str) or not isinstance(f.get("value"), str)
                    for f in facts
                ):
                    errors.append("FactSet facts need string title and value")
    return errors


@dataclass
class TeamsReceiver:
    """A Workflows "When a Teams webhook request is received" trigger: 202 for any JSON."""

    path: str = (
        "/workflows/"
        + secrets.token_hex(16)
        + "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun"
        + "&sv=1.0&sig="
        + secrets.token_urlsafe(32)
    )
    throttle: int = 0  # answer 429 this many times first
    messages: list[dict[str, Any]] = field(default_factory=list)
    card_errors: list[str] = field(default_factory=list)  # the flow run history

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url + self.path

    def respond(self, request: Request) -> Reply:
        if request.method != "POST":
            return _json(405, {"error": {"code": "MethodNotAllowed"}})
        if request.path != self.path:  # a wrong or revoked signature
            return _json(401, {"error": {"code": "DirectApiAuthorizationRequired"}})
        if self.throttle:
            self.throttle -= 1
            return _json(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "2"})
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _json(415, {"error": {"code": "UnsupportedMediaType"}})
        try:
            document = json.loads(request.body)
        except ValueError:
            return _json(400, {"error": {"code": "InvalidRequestContent"}})
        self.card_errors.extend(adaptive_card_errors(document))
        self.messages.append(document)
        return 202, {}, b""

    def close(self) -> None:
        self.target.close()


# -- GitLab pipeline trigger -------------------------------------------------------------


@dataclass
class GitLabReceiver:
    """POST /api/v4/projects/:id/trigger/pipeline: token + ref (+ variables), JSON or form."""

    project: str = "acme%2Ffleet-config"
    project_id: int = 42
    token: str = field(default_factory=lambda: "glptt-" + secrets.token_hex(20))
    refs: tuple[str, ...] = ("main", "release")
    variables_allowed: bool = True
    pipelines: list[dict[str, Any]] = field(default_factory=list)  # what each trigger sent

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return f"{self.target.url}/api/v4/projects/{self.project}"

    def respond(self, request: Request) -> Reply:
        from urllib.parse import parse_qsl, urlsplit

        split = urlsplit(request.path)
        paths = {f"/api/v4/projects/{p}/trigger/pipeline" for p in (self.project, self.project_id)}
        if request.method != "POST" or split.path not in paths:
            return _json(404, {"message": "404 Not Found"})
        fields: dict[str, Any] = dict(parse_qsl(split.query))
        content_type = request.headers.get("content-type", "")
        try:
            if content_type.startswith("application/json"):
                fields.update(json.loads(request.body))
            elif content_type.startswith("application/x-www-form-urlencoded"):
                variables: dict[str, str] = {}
                for key, value in parse_qsl(request.body.decode()):
                    if key.startswith("variables[") and key.endswith("]"):
                        variables[key[len("variables[") : -1]] = value
                    else:
                        fields[key] = value
                if variables:
                    fields["variables"] = variables
        except ValueError:
            return _json(400, {"error": "400 Bad request - JSON parse error"})
        if "token" not in fields:
            return _json(400, {"error": "token is missing"})
        if "ref" not in fields:
            return _json(400, {"error": "ref is missing"})
        if fields["token"] != self.token:
            return _json(404, {"message": "404 Not Found"})
        variables = fields.get("variables", {})
        if not isinstance(variables, dict) or any(
            not isinstance(v, str) for v in variables.values()
        ):
            return _json(400, {"error": "variables is invalid"})
        if variables and not self.variables_allowed:
            return _json(
                400, {"message": {"base": ["Insufficient permissions to set pipeline variables"]}}
            )
        if fields["ref"] not in self.refs:
            return _json(400, {"message": {"base": ["Reference not found"]}})
        self.pipelines.append(fields)
        number = len(self.pipelines)
        now = datetime.datetime.now(datetime.UTC).isoformat()
        return _json(
            201,
            {
                "id": 1000 + number,
                "iid": number,
                "project_id": self.project_id,
                "sha": secrets.token_hex(20),
                "ref": fields["ref"],
                "status": "created",
                "source": "trigger",
                "web_url": f"https://gitlab.example.com/acme/fleet/-/pipelines/{1000 + number}",
                "created_at": now,
                "updated_at": now,
                "before_sha": "0" * 40,
                "tag": False,
                "yaml_errors": None,
            },
        )

    def close(self) -> None:
        self.target.close()


# -- syslog over TLS (RFC 5425) with CEF -------------------------------------------------


def self_signed_certificate(folder: Any, host: str = "127.0.0.1") -> tuple[str, str]:
    """A P-256 self-signed server certificate for `host` (an IP SAN); returns (cert, key) paths."""
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syslog test receiver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(folder) / "syslog.crt", Path(folder) / "syslog.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def parse_octet_counted(stream: bytes) -> list[bytes]:
    """RFC 5425 frames: MSG-LEN SP MSG, MSG-LEN non-zero without leading zeros, exact length."""
    frames, position = [], 0
    while position < len(stream):
        space = stream.find(b" ", position)
        digits = stream[position:space] if space > 0 else b""
        if not digits.isdigit() or digits.startswith(b"0"):
            raise ValueError(
                f"bad MSG-LEN at byte {position}: {stream[position : position + 12]!r}"
            )
        length = int(digits)
        start = space + 1
        if start + length > len(stream):
            raise ValueError("frame shorter than its MSG-LEN")
        message = stream[start : start + length]
        if not message.startswith(b"<"):
            raise ValueError("MSG-LEN does not match: frame does not start with <PRI>")
        frames.append(message)
        position = start + length
    return frames


def split_unescaped(text: str, separator: str, limit: int) -> list[str]:
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator and len(parts) < limit:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, index = [], 0
    while index < len(value):
        if value[index] == "\\" and index + 1 < len(value):
            following = value[index + 1]
            out.append({"n": "\n", "r": "\r"}.get(following, following))
            index += 2
        else:
            out.append(value[index])
            index += 1
    return "".join(out)


def parse_cef(text: str) -> dict[str, Any]:
    """CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension (ArcSight)."""
    import re

    parts = split_unescaped(text, "|", 7)
    if len(parts) != 8 or not parts[0].startswith("CEF:"):
        raise ValueError(f"not a CEF record: {text[:60]!r}")
    header = [_unescape(p) for p in parts[:7]]
    severity = header[6]
    if not (severity.isdigit() and 0 <= int(severity) <= 10) and severity not in (
        "Unknown",
        "Low",
        "Medium",
        "High",
        "Very-High",
    ):
        raise ValueError(f"bad severity {severity!r}")
    extension: dict[str, str] = {}
    raw = parts[7]
    # An unescaped '=' ends a key; the key is the last space-free word before it.
    starts = [
        m for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", raw) if not _escaped(raw, m.end() - 1)
    ]
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(raw)
        value = raw[match.end() : end]
        if re.search(r"(?<!\\)(?:\\\\)*=", value):
            raise ValueError(f"unescaped '=' in the value of {match.group(1)}")
        extension[match.group(1)] = _unescape(value)
    return {
        "version": header[0],
        "vendor": header[1],
        "product": header[2],
        "device_version": header[3],
        "signature_id": header[4],
        "name": header[5],
        "severity": severity,
        "extension": extension,
    }


def _escaped(text: str, position: int) -> bool:
    backslashes = 0
    while position - backslashes - 1 >= 0 and text[position - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


class SyslogTlsReceiver:
    """A TLS syslog receiver (RFC 5425) on 127.0.0.1; parses frames, 5424 headers and CEF."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        import socket
        import ssl

        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_file, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.raw: list[bytes] = []  # one stream per connection
        self.messages: list[dict[str, Any]] = []  # parsed syslog + CEF
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: Any) -> None:
        import ssl

        chunks = []
        try:
            with self._context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(5)
                while data := tls.recv(65536):
                    chunks.append(data)
                with contextlib.suppress(OSError, ssl.SSLError):
                    tls.unwrap()  # answer the sender's close_notify
        except (OSError, ssl.SSLError) as error:
            with self._lock:
                self.errors.append(f"connection: {error!r}")
        stream = b"".join(chunks)
        with self._done:
            self.connections += 1
            if stream:
                self.raw.append(stream)
                try:
                    for message in parse_octet_counted(stream):
                        self.messages.append(self._parse(message))
                except (ValueError, UnicodeDecodeError) as error:
                    self.errors.append(repr(error))
            self._done.notify_all()

    @staticmethod
    def _parse(message: bytes) -> dict[str, Any]:
        import re

        text = message.decode("utf-8")
        match = re.match(
            r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)\Z", text, re.S
        )
        if not match:
            raise ValueError(f"not an RFC 5424 message: {text[:80]!r}")
        pri = int(match.group(1))
        if pri > 191:
            raise ValueError("PRI out of range")
        datetime.datetime.fromisoformat(match.group(2))
        return {
            "pri": pri,
            "timestamp": match.group(2),
            "hostname": match.group(3),
            "app": match.group(4),
            "msgid": match.group(6),
            "cef": parse_cef(match.group(8)),
            "bytes": message,
        }

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        with self._done:
            self._done.wait_for(lambda: len(self.messages) + len(self.errors) >= count, timeout)

    def close(self) -> None:
        import socket

        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): stop listening now
        self._listener.close()


# -- Jira Cloud REST API v3 --------------------------------------------------------------

ADF_INLINE = ("text", "hardBreak", "mention", "emoji", "inlineCard")
ADF_BLOCKS = (
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "codeBlock",
    "blockquote",
    "rule",
    "panel",
    "table",
    "tableRow",
    "tableHeader",
    "tableCell",
)
ADF_MARKS = ("strong", "em", "code", "link", "strike", "underline", "textColor", "subsup")


def adf_errors(document: Any) -> list[str]:
    """ADF structure per the Atlassian document-structure page: a `doc` root with version 1,
    block nodes with a `content` array, text nodes with a non-empty `text` and known marks."""
    if not isinstance(document, dict) or document.get("type") != "doc":
        return ["root must be an ADF doc (type doc)"]
    if document.get("version") != 1:
        return ["doc version must be 1"]
    errors: list[str] = []

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict) or "type" not in node:
            errors.append(f"{where}: not a node")
            return
        kind = node["type"]
        if kind == "text":
            if not isinstance(node.get("text"), str) or not node["text"]:
                errors.append(f"{where}: text node without text")
            for mark in node.get("marks", []):
                if not isinstance(mark, dict) or mark.get("type") not in ADF_MARKS:
                    errors.append(f"{where}: unknown mark {mark!r}")
            return
        if kind not in ADF_BLOCKS + ADF_INLINE:
            errors.append(f"{where}: unknown node {kind!r}")
            return
        if kind in ("rule", "hardBreak"):
            return
        if not isinstance(node.get("content"), list):
            errors.append(f"{where}: {kind} without a content array")
            return
        for index, child in enumerate(node["content"]):
            walk(child, f"{where}.{kind}[{index}]")

    if not isinstance(document.get("content"), list):
        return ["doc without a content array"]
    for index, child in enumerate(document["content"]):
        walk(child, f"doc[{index}]")
    return errors


def _jira_error(status: int, *messages: str, **errors: str) -> Reply:
    return _json(status, {"errorMessages": list(messages), "errors": errors})


JIRA_SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/"
    "#CHANGE-2046"
)
JIRA_UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
JIRA_NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
# A workflow whose done transition is not named "Done": connectors must go by category.
JIRA_TRANSITIONS = (
    {"id": "11", "name": "Back to backlog", "status": "To Do", "category": "new"},
    {"id": "21", "name": "Start work", "status": "In Progress", "category": "indeterminate"},
    {"id": "41", "name": "Resolve", "status": "Closed", "category": "done"},
)


@dataclass
class JiraReceiver:
    """Jira Cloud v3: Basic email:token; create issue (ADF), enhanced JQL search (the old
    /search is 410), comments and transitions; 429 with Retry-After when told to throttle."""

    email: str = "certbot@acme.example"
    token: str = field(default_factory=lambda: "ATATT3x" + secrets.token_hex(16))
    project: str = "PKI"
    issue_types: tuple[str, ...] = ("Task", "Bug")
    throttle: int = 0  # answer 429 this many times first
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> issue
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def secret(self) -> str:
        return f"{self.email}:{self.token}"

    def respond(self, request: Request) -> Reply:
        reply = self._respond(request)
        if reply[0] >= 400:
            self.failures.append(f"{request.method} {request.path}: {reply[0]} {reply[2]!r}")
        return reply

    def _respond(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(self.secret.encode()).decode()
        if request.headers.get("authorization") != expected:
            return _text(401, "Client must be authenticated to access this resource.")
        if self.throttle:
            self.throttle -= 1
            return _json(
                429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, {"Retry-After": "5"}
            )
        url = urllib.parse.urlsplit(request.path)
        path = url.path
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[
            0
        ] not in ("application/json",):
            return _text(415, "Unsupported Media Type")
        try:
            document = json.loads(request.body) if request.body else {}
        except ValueError:
            return _jira_error(400, "Unexpected character: was expecting JSON")
        if path in ("/rest/api/3/search", "/rest/api/2/search"):
            return _jira_error(410, JIRA_SEARCH_GONE)
        if path == "/rest/api/3/search/jql":
            if request.method == "GET":
                query = urllib.parse.parse_qs(url.query)
                document = {
                    "jql": query.get("jql", [""])[0],
                    "fields": ",".join(query.get("fields", [])).split(",")
                    if "fields" in query
                    else None,
                }
            elif request.method != "POST":
                return _text(405, "Method Not Allowed")
            return self._search(document)
        if path == "/rest/api/3/issue":
            if request.method != "POST":
                return _text(405, "Method Not Allowed")
            return self._create(document)
        parts = path.split("/")
        if len(parts) == 7 and parts[:5] == ["", "rest", "api", "3", "issue"]:
            issue = self._issue(parts[5])
            if issue is None:
                return _jira_error(
                    404, "Issue does not exist or you do not have permission to see it."
                )
            if parts[6] == "comment" and request.method == "POST":
                errors = adf_errors(document.get("body"))
                if errors:
                    return _jira_error(400, *errors)
                issue["comments"].append(document["body"])
                comment_id = str(10000 + len(issue["comments"]))
                return _json(201, {"id": comment_id, "body": document["body"]})
            if parts[6] == "transitions" and request.method == "GET":
                return _json(200, {"transitions": self._transitions(issue)})
            if parts[6] == "transitions" and request.method == "POST":
                wanted = (document.get("transition") or {}).get("id")
                for transition in JIRA_TRANSITIONS:
                    if transition["id"] == wanted and transition["status"] != issue["status"]:
                        issue["status"] = transition["status"]
                        issue["category"] = transition["category"]
                        return 204, {}, b""
                return _jira_error(400, f"Transition id '{wanted}' is not valid for this issue.")
        return _jira_error(404, "Not found")

    def _issue(self, id_or_key: str) -> dict[str, Any] | None:
        for issue in self.issues.values():
            if id_or_key in (issue["id"], issue["key"]):
                return issue
        return None

    def _transitions(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": t["id"],
                "name": t["name"],
                "to": {
                    "name": t["status"],
                    "statusCategory": {"key": t["category"], "name": t["category"]},
                },
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
            }
            for t in JIRA_TRANSITIONS
            if t["status"] != issue["status"]
        ]

    def _create(self, document: dict[str, Any]) -> Reply:
        fields = document.get("fields")
        if not isinstance(fields, dict):
            return _jira_error(400, "fields are required")
        errors: dict[str, str] = {}
        project = fields.get("project") or {}
        if project.get("key") != self.project:
            errors["project"] = "valid project is required"
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            errors["issuetype"] = "valid issue type is required"
        if not isinstance(fields.get("summary"), str) or not fields["summary"].strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(fields["summary"]) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        if "description" in fields:
            if not isinstance(fields["description"], dict):
                errors["description"] = JIRA_NOT_ADF
            elif adf_errors(fields["description"]):
                errors["description"] = "; ".join(adf_errors(fields["description"]))
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(
            not isinstance(value, str) or not value or " " in value or len(value) > 255
            for value in labels
        ):
            errors["labels"] = "The label can't contain spaces."
        if errors:
            return _jira_error(400, **errors)
        number = len(self.issues) + 1
        issue_id = str(10000 + number)
        self.issues[issue_id] = {
            "id": issue_id,
            "key": f"{self.project}-{number}",
            "fields": fields,
            "status": "To Do",
            "category": "new",
            "comments": [],
        }
        return _json(
            201,
            {
                "id": issue_id,
                "key": f"{self.project}-{number}",
                "self": f"{self.url}/rest/api/3/issue/{issue_id}",
            },
        )

    def _search(self, document: dict[str, Any]) -> Reply:
        jql = document.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            return _jira_error(400, JIRA_UNBOUNDED)
        matchers: list[Callable[[dict[str, Any]], bool]] = []
        bounded = False
        for clause in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
            found = re.fullmatch(
                r'(project|labels|statusCategory)\s*(=|!=)\s*("(?:[^"\\]|\\.)*"|[\w-]+)',
                clause.strip(),
            )
            if not found:
                return _jira_error(400, f"Error in the JQL Query: cannot parse {clause!r}")
            name, operator, raw = found.groups()
            value = json.loads(raw) if raw.startswith('"') else raw
            bounded = bounded or (name == "project" and operator == "=")

            def match(issue: dict[str, Any], name=name, operator=operator, value=value) -> bool:
                if name == "project":
                    hit = issue["key"].split("-")[0] == value
                elif name == "labels":
                    hit = value in issue["fields"].get("labels", [])
                else:
                    hit = issue["category"] == str(value).lower()
                return hit if operator == "=" else not hit

            matchers.append(match)
        if not bounded:
            return _jira_error(400, JIRA_UNBOUNDED)
        wanted = document.get("fields") or []
        issues = []
        for issue in self.issues.values():
            if all(match(issue) for match in matchers):
                item: dict[str, Any] = {"id": issue["id"]}  # fields default: id only
                if wanted:
                    item["fields"] = {
                        name: {
                            "name": issue["status"],
                            "statusCategory": {"key": issue["category"]},
                        }
                        if name == "status"
                        else issue["fields"].get(name)
                        for name in wanted
                    }
                issues.append(item)
        return _json(200, {"issues": issues, "isLast": True})

    def close(self) -> None:
        self.target.close()


# -- ServiceNow Table API ----------------------------------------------------------------

SERVICENOW_TABLES = ("incident", "cmdb_ci_certificate")


def _now_error(status: int, message: str, detail: str = "") -> Reply:
    return _json(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


def servicenow_query(query: str) -> Callable[[dict[str, Any]], bool]:
    """An encoded query of `field=value` terms joined by `^` (and) / `^OR` (or, binding
    tighter than and), the subset the Table API documentation shows for sysparm_query."""
    groups: list[list[tuple[str, str]]] = []
    for term in query.split("^"):
        alternative = term.startswith("OR")
        term = term[2:] if alternative else term
        name, equals, value = term.partition("=")
        if not equals or not name:
            raise ValueError(f"unsupported query term {term!r}")
        if alternative and groups:
            groups[-1].append((name, value))
        else:
            groups.append([(name, value)])
    return lambda record: all(
        any(str(record.get(name, "")) == value for name, value in group) for group in groups
    )


@dataclass
class ServiceNowReceiver:
    """/api/now/table/{incident,cmdb_ci_certificate}: Basic user:password; GET with
    sysparm_query, POST (201) and PATCH (200, 404 for an unknown sys_id); JSON in and out,
    every field value a string; `{"result": ...}` answers and `{"error": ...}` failures."""

    user: str = "certplane.integration"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    throttle: int = 0  # answer 429 this many times first
    tables: dict[str, dict[str, dict[str, str]]] = field(
        default_factory=lambda: {name: {} for name in SERVICENOW_TABLES}
    )
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = LocalTarget(self.respond)

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def secret(self) -> str:
        return f"{self.user}:{self.password}"

    def respond(self, request: Request) -> Reply:
        reply = self._respond(request)
        if reply[0] >= 400:
            self.failures.append(f"{request.method} {request.path}: {reply[0]} {reply[2]!r}")
        return reply

    def _respond(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(self.secret.encode()).decode()
        if request.headers.get("authorization") != expected:
            return _now_error(401, "User Not Authenticated", "Required to provide Auth information")
        if self.throttle:
            self.throttle -= 1
            return _json(
                429,
                {"error": {"message": "Rate limit exceeded", "detail": ""}, "status": "failure"},
                {"Retry-After": "7"},
            )
        if "application/json" not in request.headers.get("accept", "application/json"):
            return _now_error(406, "Not Acceptable")
        url = urllib.parse.urlsplit(request.path)
        parts = url.path.split("/")
        if len(parts) not in (5, 6) or parts[:4] != ["", "api", "now", "table"]:
            return _now_error(400, "Requested URI does not represent any resource")
        table = parts[4]
        if table not in self.tables:
            return _now_error(400, "Invalid table " + table)
        records = self.tables[table]
        sys_id = parts[5] if len(parts) == 6 else None
        if request.method == "GET" and sys_id is None:
            query = urllib.parse.parse_qs(url.query)
            try:
                match = (
                    servicenow_query(query.get("sysparm_query", [""])[0])
                    if "sysparm_query" in query
                    else (lambda r: True)
                )
            except ValueError as error:
                return _now_error(400, str(error))
            limit = int(query.get("sysparm_limit", ["10000"])[0])
            found = [r for r in records.values() if match(r)][:limit]
            if "sysparm_fields" in query:
                names = query["sysparm_fields"][0].split(",")
                found = [{n: r.get(n, "") for n in names} for r in found]
            return _json(200, {"result": found}, {"X-Total-Count": str(len(found))})
        if request.method not in ("POST", "PATCH", "PUT"):
            return _now_error(405, "Method not Supported")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _now_error(415, "Unsupported Media Type")
        try:
            document = json.loads(request.body)
        except ValueError:
            return _now_error(400, "Exception while reading request", "Invalid JSON")
        if not isinstance(document, dict):
            return _now_error(400, "Exception while reading request", "expected one record")
        bad = [name for name, value in document.items() if not isinstance(value, str)]
        if bad:
            return _now_error(400, "Invalid field values", f"not strings: {bad}")
        if request.method == "POST" and sys_id is None:
            required = (
                ("short_description",) if table == "incident" else ("fingerprint", "serial_number")
            )
            missing = [name for name in required if not document.get(name)]
            if missing:
                return _now_error(
                    403, "Operation Failed", f"Data Policy Exception: {missing} mandatory"
                )
            new_id = uuid.uuid4().hex
            record = {**document, "sys_id": new_id}
            if table == "incident":
                record.update(number=f"INC{1000001 + len(records)}", active="true", state="1")
            records[new_id] = record
            return _json(
                201, {"result": record}, {"Location": f"{self.url}/api/now/table/{table}/{new_id}"}
            )
        if sys_id is None:
            return _now_error(405, "Method not Supported")
        if sys_id not in records:
            return _now_error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        records[sys_id].update(document)
        return _json(200, {"result": records[sys_id]})

    def close(self) -> None:
        self.target.close()
