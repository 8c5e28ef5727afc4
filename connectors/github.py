"""GitHub `repository_dispatch`: start a workflow in a repository when a certificate changes.

POST {url}/dispatches where `url` is the repository's API URL
(https://api.github.com/repos/OWNER/REPO; GitHub Enterprise: https://HOST/api/v3/repos/...),
with a Bearer token (fine-grained PAT or App token with Contents: write) as the secret.
`event_type` is `certplane.<type>` (the workflow's `on: repository_dispatch: types`);
`client_payload` keeps to GitHub's limits (at most 10 top-level keys, under 64 KB) and carries
the event id, since GitHub does not deduplicate: use it in a workflow `concurrency` group.
Answers: 204 = queued; 422 / 404 / 401 permanent; rate limits (403/429) retry.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.base import CertplaneEvent, PermanentDelivery, event_type_slug
from connectors.http import HttpSender

API_VERSION = "2022-11-28"
MAX_PAYLOAD_BYTES = 64 * 1024 - 1


def dispatch_body(event: CertplaneEvent, prefix: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": event.event_id,
        "detail_type": event.detail_type.value,
        "tenant": event.tenant,
        "occurred_at": event.occurred_at,
        "detail": dict(event.detail),
    }
    if len(json.dumps(payload).encode()) > MAX_PAYLOAD_BYTES:
        payload["detail"] = {"truncated": True}
        if event.certificate:
            payload["certificate_id"] = event.certificate.get("certificateId")
    return {
        "event_type": f"{prefix}{event_type_slug(event.detail_type)}"[:100],
        "client_payload": payload,
    }


class GitHubDispatchConnector:
    """Sends each event as a repository_dispatch to one repository."""

    type_name = "github"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        event_type_prefix: str = "certplane.",
        sender: HttpSender | None = None,
    ) -> None:
        if not url or not secret:
            raise ValueError("a github connector needs the repository API url and a token")
        self._url = url.rstrip("/") + "/dispatches"
        self._token = secret
        self._prefix = event_type_prefix
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        body = json.dumps(dispatch_body(event, self._prefix), separators=(",", ":")).encode()
        response = self._sender.post(
            self._url,
            body=body,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": API_VERSION,
                "Content-Type": "application/json",
            },
            target="github",
        )
        if response.status_code != 204:
            raise PermanentDelivery(f"github: expected 204, got {response.status_code}")
