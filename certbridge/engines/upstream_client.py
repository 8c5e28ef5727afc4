"""An HTTPS client of an xPKI Certifier API that speaks like libCertifier v2.2.1.

Same headers as the C client (Accept, Content-Type with charset, Bearer token, a 16-character
`x-xpki-tracking-id`, a non-empty `x-xpki-source`), TLS 1.2 or newer with the peer and host
verified against one configured trust anchor. Each thread has its own `requests.Session`
(sessions are not documented as thread-safe) with `trust_env = False`: the environment's
REQUESTS_CA_BUNDLE would otherwise replace the trust anchor, and proxies from the environment
must not see the bearer tokens.

Failures become the CertBridge error classes: a network failure, timeout, 5xx, 408 or 429 is
transient (another engine may answer now, this one later); any other 4xx, a redirect, a reply
that is not JSON, or a TLS certificate the trust anchor does not verify is permanent — a
request or a configuration that retrying will not fix. Every message carries the tracking id,
which is what the upstream's operators search their logs for.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from certbridge.engines.upstream_auth import TokenSource, random_text
from certbridge.interface import PermanentEngineError, TransientEngineError

logger = logging.getLogger(__name__)

TRACKING_HEADER = "x-xpki-tracking-id"
SOURCE_HEADER = "x-xpki-source"
_TRANSIENT_STATUSES = frozenset({408, 429})


class _Tls12Adapter(HTTPAdapter):
    """Hands urllib3 one SSLContext: TLS >= 1.2, the trust anchor only, host name checked."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification on, host names checked, nothing older than TLS 1.2 (as libCertifier)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _is_verification_failure(error: BaseException) -> bool:
    """Whether somewhere in the exception chain the peer's certificate failed to verify."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError | ssl.CertificateError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        pending.extend(current.args)
    return False


class UpstreamRefused(PermanentEngineError):
    """The upstream answered 4xx: the request (or our credentials) is unacceptable to it."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def refusal_details(response: requests.Response) -> tuple[str, str]:
    """(code, message) of an error body — `{"error": {"code", "message"}}` as certplane
    writes it, or the common flat shapes of Java back ends — else ("", start of the body)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text.strip()[:200] or response.reason or ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            body = error
        code = body.get("code") or body.get("errorCode") or body.get("error") or ""
        message = body.get("message") or body.get("errorMessage") or body.get("detail") or ""
        if code or message:
            return str(code), str(message)
    return "", json.dumps(body)[:200]


class CertifierClient:
    """Calls one upstream Certifier API (base URL ending in /v1/certifier)."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        ca_file: str | None = None,
        source: str = "certplane",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the upstream Certifier API must be an https:// URL, not {base_url}")
        if not source:
            raise ValueError("x-xpki-source must not be empty")
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self._ca_file = ca_file
        self._source = source
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()
        self._context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()

    # -- calls ------------------------------------------------------------------------------

    def post(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON document with a fresh bearer token; the JSON object of a 2xx reply."""
        tracking = random_text()
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {self.tokens.bearer()}",
            TRACKING_HEADER: tracking,
            SOURCE_HEADER: self._source,
        }
        body = json.dumps(document).encode()
        return self._send("POST", path, tracking, headers=headers, data=body)

    def status(self, certificate_id: str) -> str:
        """GET /certificate/status/<id> (no authentication): GOOD, REVOKED or UNKNOWN."""
        tracking = random_text()
        headers = {"Accept": "application/json", TRACKING_HEADER: tracking}
        reply = self._send(
            "GET", f"/certificate/status/{quote(certificate_id)}", tracking, headers=headers
        )
        return str(reply.get("status", ""))

    # -- plumbing ---------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no REQUESTS_CA_BUNDLE, no proxies from the environment
            session.verify = self._ca_file or True
            session.mount("https://", _Tls12Adapter(self._tls_context()))
            self._local.session = session
        return session

    def _tls_context(self) -> ssl.SSLContext:
        with self._context_lock:
            if self._context is None:
                try:
                    self._context = tls_context(self._ca_file)
                except (OSError, ssl.SSLError) as error:
                    raise PermanentEngineError(
                        f"cannot load the upstream trust anchor {self._ca_file}: {error}"
                    ) from None
            return self._context

    def _send(self, method: str, path: str, tracking: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        where = f"{method} {url} ({TRACKING_HEADER}={tracking})"
        try:
            response = self._session().request(
                method, url, timeout=self._timeout, allow_redirects=False, **kwargs
            )
        except requests.exceptions.SSLError as error:
            if _is_verification_failure(error):
                raise PermanentEngineError(
                    f"{where}: the upstream's TLS certificate does not verify against "
                    f"{self._ca_file or 'the system trust store'} (check ca_file and the host "
                    f"name in base_url): {error}"
                ) from None
            raise TransientEngineError(f"{where}: TLS failure: {error}") from None
        except requests.exceptions.Timeout as error:
            raise TransientEngineError(
                f"{where}: timed out ({error}); the upstream may still have completed it"
            ) from None
        except requests.exceptions.RequestException as error:
            raise TransientEngineError(f"{where}: cannot reach the upstream: {error}") from None
        return self._reply(response, where)

    def _reply(self, response: requests.Response, where: str) -> dict[str, Any]:
        status = response.status_code
        if status >= 300:
            code, message = refusal_details(response)
            details = f"{code}: {message}" if code else message
            logger.warning("upstream Certifier refused %s: HTTP %s %s", where, status, details)
            if status >= 500 or status in _TRANSIENT_STATUSES:
                raise TransientEngineError(f"{where}: HTTP {status} {details}")
            if status < 400:
                location = response.headers.get("Location", "")
                raise PermanentEngineError(
                    f"{where}: HTTP {status} redirect to {location!r}; fix base_url"
                )
            if status == 401:
                self.tokens.forget()  # re-read the credentials next time (rotation)
            raise UpstreamRefused(f"{where}: HTTP {status} {details}", status, code)
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise PermanentEngineError(f"{where}: the reply is not a JSON object")
        return reply
