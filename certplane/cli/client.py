"""A small management-API client: finds the server, token and CA, and raises clear errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from certplane.dev.home import DevHome, default_home

URL_ENV = "CERTPLANE_URL"
TOKEN_ENV = "CERTPLANE_TOKEN"
CA_FILE_ENV = "CERTPLANE_CA_FILE"
TIMEOUT_SECONDS = 30


class ApiError(Exception):
    """The server refused a request (or could not be reached)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Connection:
    url: str
    token: str
    verify: str | bool

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        token: str | None = None,
        home: Path | None = None,
        ca_file: Path | None = None,
    ) -> Connection:
        """--url/--token first, then CERTPLANE_URL/CERTPLANE_TOKEN, then the dev home."""
        dev_home = DevHome(home.expanduser() if home else default_home())
        url = url or os.environ.get(URL_ENV)
        url_from_home = not url
        if url_from_home and dev_home.endpoint.exists():
            url = json.loads(dev_home.endpoint.read_text())["url"]
        if not url:
            raise ApiError(
                None,
                "no_server",
                f"no server: pass --url, set {URL_ENV}, or start `certplane dev` "
                f"(looked in {dev_home.root})",
            )
        token = token or os.environ.get(TOKEN_ENV)
        if not token and url_from_home and dev_home.admin_token.exists():
            # The dev home's admin token goes only to the dev server it belongs to.
            token = dev_home.admin_token.read_text().strip()
        if not token:
            raise ApiError(None, "no_token", f"no token: pass --token or set {TOKEN_ENV}")
        ca = ca_file or (Path(os.environ[CA_FILE_ENV]) if os.environ.get(CA_FILE_ENV) else None)
        if ca is None and url_from_home and dev_home.root_pem.exists():
            ca = dev_home.root_pem
        return cls(url=url.rstrip("/"), token=token, verify=str(ca) if ca else True)


class ApiClient:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.session = requests.Session()
        self.session.trust_env = False  # the dev CA must win over REQUESTS_CA_BUNDLE
        self.session.headers["Authorization"] = f"Bearer {connection.token}"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        headers = {}
        if idempotency_key := params.pop("idempotency_key", None):
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.session.request(
                method,
                self.connection.url + path,
                json=body,
                params={k: v for k, v in params.items() if v is not None},
                headers=headers,
                verify=self.connection.verify,
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            raise ApiError(None, "unreachable", f"{self.connection.url}: {error}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code >= 400:
            error = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):
                raise ApiError(
                    response.status_code, error.get("code", "error"), error.get("message", "")
                )
            raise ApiError(response.status_code, "http_error", response.text[:200])
        return payload
