"""The local HTTPS front: turns HTTP requests into API Gateway REST proxy events.

It plays API Gateway's part for `certplane dev`: route by path prefix to a Lambda handler,
cap request bodies, and map the proxy response back to HTTP.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.resources import FUNCTIONS, FunctionSpec

logger = logging.getLogger(__name__)

CONNECTION_TIMEOUT_SECONDS = 30
MAX_REQUEST_BYTES = 1024 * 1024  # API Gateway allows 10 MB; nothing here needs more than 1 MB.

Invoke = Callable[[FunctionSpec, dict[str, Any]], dict[str, Any]]


def route(path: str) -> FunctionSpec | None:
    """The function whose longest path prefix matches (as API Gateway resources would)."""
    best: tuple[int, FunctionSpec] | None = None
    for spec in FUNCTIONS:
        for prefix in spec.path_prefixes:
            if (path == prefix or path.startswith(prefix)) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), spec)
    return best[1] if best else None


def client_cert_identity(der: bytes) -> dict[str, Any]:
    """`requestContext.identity.clientCert` as API Gateway's mutual TLS fills it in."""
    certificate = x509.load_der_x509_certificate(der)
    return {
        "clientCertPem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "subjectDN": certificate.subject.rfc4514_string(),
        "issuerDN": certificate.issuer.rfc4514_string(),
        "serialNumber": format(certificate.serial_number, "x"),
        "validity": {
            "notBefore": certificate.not_valid_before_utc.strftime("%b %d %H:%M:%S %Y GMT"),
            "notAfter": certificate.not_valid_after_utc.strftime("%b %d %H:%M:%S %Y GMT"),
        },
    }


def proxy_event(
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
    client_cert_der: bytes | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as API Gateway would send it."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    return {
        "resource": "/{proxy+}",
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": parts.path,
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent", ""),
                "clientCert": client_cert_identity(client_cert_der) if client_cert_der else None,
            },
            "accountId": "123456789012",
            "apiId": "certplane-dev",
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


class _Handler(BaseHTTPRequestHandler):
    server: DevHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.close_connection = True
        self._send(status, {"Content-Type": "application/json"}, body)

    def _dispatch(self) -> None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            return self._error(411, "length_required", "send the body with a Content-Length")
        try:
            length = int(length_header or 0)
        except ValueError:
            return self._error(400, "bad_request", "Content-Length is not a number")
        if length < 0 or length > MAX_REQUEST_BYTES:
            return self._error(413, "payload_too_large", "the request body is too large")
        body = self.rfile.read(length) if length else b""
        spec = route(urlsplit(self.path).path)
        if spec is None:
            return self._error(404, "not_found", "no such resource")
        peer = getattr(self.connection, "getpeercert", None)
        event = proxy_event(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            self.client_address[0],
            peer(binary_form=True) if peer else None,
        )
        try:
            response = self.server.invoke(spec, event)
        except Exception:
            logger.exception("handler %s raised", spec.handler)
            return self._error(502, "bad_gateway", "the handler failed")
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        self._send(int(response.get("statusCode", 502)), headers, data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class DevHttpServer(ThreadingHTTPServer):
    """An HTTPS (or plain HTTP, for status URLs) server in front of the Lambda host."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], invoke: Invoke, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.invoke = invoke
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake in the worker thread, so a silent client cannot stall the accept loop."""
        request.settimeout(CONNECTION_TIMEOUT_SECONDS)
        # Headers and body leave in separate writes; with Nagle's algorithm the second waits
        # for the client's delayed ACK (~40 ms per response on a keep-alive connection).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                logger.info("TLS handshake with %s failed: %s", client_address, error)
                return
        super().finish_request(request, client_address)
