"""One HTTP sender for every connector: bounded timeouts and one reading of status codes.

Classification follows what the targets document (notes/vendor-apis.md): 429 and 5xx (and
408) may succeed later, honouring `Retry-After`; any other 4xx will not. Redirects are not
followed (Standard Webhooks: a 3xx is a failure) and are permanent: the configured URL is
wrong. `trust_env` is off so proxies and CA-bundle variables of the host never change where
or how an event goes; `verify` says explicitly which CAs are trusted.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import requests

from connectors.base import PermanentDelivery, RetryableDelivery

# (connect, read) seconds: a Lambda batch must finish well inside its timeout.
DEFAULT_TIMEOUT = (3.05, 10.0)
# Longest wait we pass on; SQS visibility tops out at 12 h, targets rarely ask for > 1 h.
MAX_RETRY_AFTER = 3600.0
REASON_BODY_CHARS = 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - (now if now is not None else time.time())), MAX_RETRY_AFTER)


def _rate_limit_wait(response: requests.Response) -> float | None:
    """GitHub-style primary rate limit: remaining 0 and an epoch-seconds reset."""
    if response.headers.get("x-ratelimit-remaining") != "0":
        return None
    reset = response.headers.get("x-ratelimit-reset", "")
    if not reset.isdigit():
        return 60.0
    return min(max(0.0, int(reset) - time.time()), MAX_RETRY_AFTER)


class HttpSender:
    """POSTs to a target and raises the delivery outcome for anything but 2xx."""

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        user_agent: str = "certplane-connector/1",
    ) -> None:
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.headers["User-Agent"] = user_agent
        self._timeout = timeout
        self._verify = verify

    def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        target: str,
    ) -> requests.Response:
        """Send `body`; `target` names the endpoint in reasons (never the URL: it may be a
        secret, as a Slack webhook URL is)."""
        return self.request("POST", url, body=body, headers=headers, target=target)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        target: str,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Any method (GET, PATCH, …) with the same timeouts, TLS trust, no proxies and the
        same outcome rules (`raise_for_outcome`)."""
        try:
            response = self._session.request(
                method,
                url,
                data=body,
                params=dict(params or {}),
                headers=dict(headers),
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.Timeout as error:
            raise RetryableDelivery(f"{target}: timed out") from error
        except requests.ConnectionError as error:
            raise RetryableDelivery(f"{target}: cannot connect ({type(error).__name__})") from error
        except requests.RequestException as error:
            raise PermanentDelivery(f"{target}: bad request ({type(error).__name__})") from error
        raise_for_outcome(response, target)
        return response


def raise_for_outcome(response: requests.Response, target: str) -> None:
    """Map an HTTP answer to success, RetryableDelivery or PermanentDelivery."""
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = _snippet(response)
    reason = f"{target}: HTTP {status}{': ' + snippet if snippet else ''}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in (408, 429) or status >= 500:
        raise RetryableDelivery(reason, retry_after)
    if status == 403 and (retry_after is not None or _rate_limit_wait(response) is not None):
        raise RetryableDelivery(reason, retry_after or _rate_limit_wait(response))
    raise PermanentDelivery(reason)


def _snippet(response: requests.Response) -> str:
    try:
        text: Any = response.text
    except Exception:  # undecodable bodies say nothing useful
        return ""
    return " ".join(str(text).split())[:REASON_BODY_CHARS]
