"""Local stand-ins for connector targets, checking requests as the real services do.

Each receiver is an http.server on 127.0.0.1 (a free port) enforcing only the [V] facts of
notes/vendor-apis.md: path, method, auth, required fields, payload shape; answering with the
service's documented status codes and bodies. Plus builders of valid certplane events.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import threading
import time
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

            do_POST = do_GET = do_PUT = _any

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
