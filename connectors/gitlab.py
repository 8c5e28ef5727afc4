"""GitLab pipeline triggers: start a pipeline on a ref when a certificate changes.

`POST {url}/trigger/pipeline` where `url` is the project's API URL
(https://gitlab.example.com/api/v4/projects/<id or url-encoded group%2Fproject>). The trigger
token (`glptt-…`) is the secret and travels in the body as `token`: it is the authentication,
no Authorization header is sent. JSON body `{"token", "ref", "variables": {...}}` (GitLab also
takes the same as form fields `variables[KEY]=value`); every variable value is a string.
Variables: CERTPLANE_EVENT_TYPE (`certificate.renewed`), CERTPLANE_DETAIL_TYPE,
CERTPLANE_EVENT_ID (GitLab has no idempotency key: dedupe in the pipeline on it),
CERTPLANE_TENANT, CERTPLANE_OCCURRED_AT, and for certificate events CERTPLANE_CERTIFICATE_ID,
CERTPLANE_SERIAL, CERTPLANE_SUBJECT, CERTPLANE_NOT_AFTER; CERTPLANE_EVENT holds the detail JSON.
Answers: 201 with the pipeline; 400 (unknown ref, or the project forbids pipeline variables:
`ci_pipeline_variables_minimum_override_role`), 401 and 404 (bad token) are permanent;
429 / 5xx retry.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.base import CertplaneEvent, PermanentDelivery, event_type_slug
from connectors.http import HttpSender

MAX_EVENT_JSON = 10_000  # keep CERTPLANE_EVENT a reasonable size for a CI variable


def trigger_variables(event: CertplaneEvent) -> dict[str, str]:
    variables = {
        "CERTPLANE_EVENT_TYPE": event_type_slug(event.detail_type),
        "CERTPLANE_DETAIL_TYPE": event.detail_type.value,
        "CERTPLANE_EVENT_ID": event.event_id,
        "CERTPLANE_TENANT": event.tenant,
        "CERTPLANE_OCCURRED_AT": event.occurred_at,
    }
    certificate = event.certificate or {}
    for name, key in (
        ("CERTPLANE_CERTIFICATE_ID", "certificateId"),
        ("CERTPLANE_SERIAL", "serial"),
        ("CERTPLANE_SUBJECT", "subject"),
        ("CERTPLANE_NOT_AFTER", "notAfter"),
    ):
        if certificate.get(key):
            variables[name] = str(certificate[key])
    detail = json.dumps(event.detail, separators=(",", ":"))
    variables["CERTPLANE_EVENT"] = detail if len(detail) <= MAX_EVENT_JSON else "{}"
    return variables


def trigger_body(event: CertplaneEvent, token: str, ref: str) -> dict[str, Any]:
    return {"token": token, "ref": ref, "variables": trigger_variables(event)}


class GitLabTriggerConnector:
    """Triggers a pipeline of one project on one ref for each event."""

    type_name = "gitlab"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        ref: str = "main",
        sender: HttpSender | None = None,
    ) -> None:
        if not url or not secret:
            raise ValueError("a gitlab connector needs the project API url and a trigger token")
        if "/api/v4/projects/" not in url:
            raise ValueError("gitlab url must be the project API URL: …/api/v4/projects/<id>")
        if not ref:
            raise ValueError("gitlab connector: ref must name a branch or tag")
        base = url.rstrip("/")
        self._url = base if base.endswith("/trigger/pipeline") else base + "/trigger/pipeline"
        self._token = secret
        self._ref = ref
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        body = json.dumps(trigger_body(event, self._token, self._ref), separators=(",", ":"))
        response = self._sender.post(
            self._url,
            body=body.encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            target="gitlab",
        )
        if response.status_code != 201:
            raise PermanentDelivery(f"gitlab: expected 201, got {response.status_code}")
