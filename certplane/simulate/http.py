"""HTTPS for simulated devices: one keep-alive session per worker thread, timed round trips.

A device's request is timed from send to the last byte of the response, so the latency is the
server's (plus the network), not the device's own key and CSR work. Sessions ignore the
environment's CA bundle (`trust_env = False`): the server's CA is given explicitly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    seconds: float


class RequestFailed(Exception):
    """A request that got no usable answer: an HTTP error status or no response at all."""

    def __init__(self, reason: str, status: int | None = None, seconds: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.seconds = seconds

    @property
    def kind(self) -> str:
        """How errors are grouped in the summary: `HTTP 503`, `connection`, `certificate`…"""
        return f"HTTP {self.status}" if self.status is not None else self.reason.split(":")[0]


class Http:
    def __init__(self, base_url: str, verify: str | bool) -> None:
        self.base_url = base_url
        self.verify = verify
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> Reply:
        """One round trip; any status >= 400 or a transport failure raises RequestFailed."""
        start = time.perf_counter()
        try:
            response = self._session().request(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                auth=auth,
                cert=(str(cert[0]), str(cert[1])) if cert else None,
                verify=self.verify,
                timeout=TIMEOUT_SECONDS,
            )
            body = response.content
        except requests.RequestException as error:
            raise RequestFailed(
                f"connection: {type(error).__name__}", seconds=time.perf_counter() - start
            ) from None
        seconds = time.perf_counter() - start
        if response.status_code >= 400:
            raise RequestFailed(body[:200].decode(errors="replace"), response.status_code, seconds)
        return Reply(response.status_code, body, seconds)
