"""`certplane dev`'s plain-HTTP status origin: what CloudFront serves in AWS.

GET /crl/... and /ca/... come from the status bucket (the embedded S3), as CloudFront's S3
origin would serve them; /ocsp goes to the OCSP Lambda handler, by name, like any function.
Unknown paths are 404. Plain HTTP on purpose: status fetching must not depend on TLS.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certplane.dev.front import CONNECTION_TIMEOUT_SECONDS, Invoke, proxy_event
from certplane.resources import OCSP

logger = logging.getLogger(__name__)

MAX_OCSP_BODY_BYTES = 64 * 1024
OBJECT_PATH = re.compile(
    r"^/((?:crl/[A-Za-z0-9._-]+(?:/[0-9]+)?\.crl)|(?:ca/[A-Za-z0-9._-]+\.cer))$"
)

Fetch = Callable[[str], tuple[bytes, str, str] | None]


class _StatusHandler(BaseHTTPRequestHandler):
    server: StatusHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("status %s %s", self.address_string(), format % args)

    def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_found(self, head: bool = False) -> None:
        self._send(404, {"Content-Type": "text/plain"}, b"not found\n", head)

    def _ocsp_too_large(self) -> None:
        der = ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        ).public_bytes(serialization.Encoding.DER)
        self.close_connection = True
        self._send(200, {"Content-Type": "application/ocsp-response"}, der)

    def do_GET(self, head: bool = False) -> None:
        path = urlsplit(self.path).path
        if path == "/ocsp" or path.startswith("/ocsp/"):
            return self._ocsp(b"")
        match = OBJECT_PATH.match(path)
        found = self.server.fetch(match.group(1)) if match else None
        if found is None:
            return self._not_found(head)
        body, content_type, cache_control = found
        self._send(200, {"Content-Type": content_type, "Cache-Control": cache_control}, body, head)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path != "/ocsp":
            self.close_connection = True
            return self._not_found()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_OCSP_BODY_BYTES or self.headers.get("Transfer-Encoding"):
            return self._ocsp_too_large()
        self._ocsp(self.rfile.read(length) if length else b"")

    def _ocsp(self, body: bytes) -> None:
        event = proxy_event(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
        )
        try:
            response = self.server.invoke(OCSP, event)
        except Exception:  # the responder answers every request itself; this is a last resort
            logger.exception("OCSP handler raised")
            der = ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.INTERNAL_ERROR
            ).public_bytes(serialization.Encoding.DER)
            return self._send(200, {"Content-Type": "application/ocsp-response"}, der)
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        self._send(int(response.get("statusCode", 200)), dict(response.get("headers") or {}), data)


class StatusHttpServer(ThreadingHTTPServer):
    """Plain HTTP: CRLs and CA certificates from the bucket, OCSP through its handler."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], invoke: Invoke, fetch: Fetch) -> None:
        super().__init__(address, _StatusHandler)
        self.invoke = invoke
        self.fetch = fetch

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT_SECONDS)
        super().finish_request(request, client_address)
