"""Jira Cloud (REST API v3): one issue per certificate and condition, closed when renewed.

Conditions that open an issue: Certificate Expiring, Certificate Issuance Failed, Certificate
Revoked for keyCompromise and CA Unavailable. The issue (`POST /rest/api/3/issue`) carries a
summary, a description in Atlassian Document Format (v3 rejects plain strings) and labels:
`certplane`, `certplane-tenant-<tenant>`, `certplane-profile-<profile>`,
`certplane-condition-<condition>` and the dedup label `certplane-<condition>-<certificate id
or ca>`. Jira has no idempotency key, so before creating we search
(`POST /rest/api/3/search/jql`, the enhanced search; the old `/search` answers 410) for an
open issue of the project with that label and the tenant label; one found means nothing to do.

On Certificate Renewed the open Expiring issue(s) of the replaced certificate get an ADF
comment and then the workflow transition whose target status category is `done` (transition
ids differ per workflow, so they are resolved at run time from `GET .../transitions`).

Auth is Basic with `email:api_token` (the connector's secret). `url` is the site
(`https://<site>.atlassian.net`) or, for scoped tokens, `https://api.atlassian.com/ex/jira/<cloudId>`.
Errors follow connectors.http: 429 / 5xx (with Retry-After) retryable, other 4xx permanent.

Limits worth knowing: search is eventually consistent, so two deliveries of the same
condition within seconds of each other can still open two issues (SQS delivers a message to
one consumer at a time, so this needs a redelivery racing an in-flight attempt); a retry
after "commented, then the transition failed" comments a second time.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery
from connectors.http import HttpSender

API = "/rest/api/3"
MAX_SUMMARY = 255
MAX_LABEL = 255
DONE = "done"  # statusCategory key of every "done" status


def send(
    sender: HttpSender,
    method: str,
    url: str,
    *,
    target: str,
    headers: Mapping[str, str],
    document: Any = None,
    params: Mapping[str, str] | None = None,
) -> requests.Response:
    """A JSON request through the connector's sender (GET, POST, PATCH…)."""
    body = None if document is None else json.dumps(document).encode()
    return sender.request(method, url, headers=headers, target=target, body=body, params=params)


def basic_auth(secret: str | None, what: str, example: str) -> str:
    """`Basic base64(a:b)` from a secret `a:b`; refuses anything else at start-up."""
    if not secret or ":" not in secret or secret.startswith(":") or secret.endswith(":"):
        raise ValueError(f"a {what} connector needs the secret as {example!r}")
    return "Basic " + base64.b64encode(secret.encode()).decode()


def json_body(response: requests.Response, target: str) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise PermanentDelivery(
            f"{target}: answered HTTP {response.status_code} without JSON"
        ) from error


# -- Atlassian Document Format ------------------------------------------------------------


def _text(value: str, *marks: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value or "-"}  # empty text is invalid
    if marks:
        node["marks"] = [{"type": mark} for mark in marks]
    return node


def adf(lead: str, facts: Sequence[tuple[str, Any]], footer: str | None = None) -> dict[str, Any]:
    """An ADF doc: a bold lead paragraph, a bullet list of `name: value`, an optional footer."""
    items = [
        {
            "type": "listItem",
            "content": [
                {
                    "type": "paragraph",
                    "content": [_text(f"{name}: ", "strong"), _text(str(value))],
                }
            ],
        }
        for name, value in facts
        if value not in (None, "", [])
    ]
    content: list[dict[str, Any]] = [{"type": "paragraph", "content": [_text(lead, "strong")]}]
    if items:
        content.append({"type": "bulletList", "content": items})
    if footer:
        content.append({"type": "paragraph", "content": [_text(footer)]})
    return {"type": "doc", "version": 1, "content": content}


# -- what an event asks for ---------------------------------------------------------------


def label(*parts: str) -> str:
    """A Jira label: no whitespace, at most 255 characters."""
    return re.sub(r"\s+", "_", "-".join(parts))[:MAX_LABEL]


def dedup_label(condition: str, subject: str) -> str:
    return label("certplane", condition, subject)


def _certificate_facts(certificate: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Subject", certificate.get("subject")),
        ("Serial", certificate.get("serial")),
        ("Certificate id", certificate.get("certificateId")),
        ("Issuer", certificate.get("issuer")),
        ("CA", certificate.get("ca")),
        ("Profile", certificate.get("profile")),
        ("Device", certificate.get("deviceId")),
        ("Not after", certificate.get("notAfter")),
        ("SHA-256 fingerprint", (certificate.get("fingerprints") or {}).get("sha256")),
    ]


def issue_for(event: CertplaneEvent) -> dict[str, Any] | None:
    """`{condition, subject, profile, summary, description}` for an event that opens an
    issue, or None. `subject` is what the ticket is about: a certificate id or a CA."""
    detail = event.detail
    tenant = event.tenant
    footer = f"certplane event {event.event_id} ({event.detail_type.value}) at {event.occurred_at}"
    if event.detail_type is DetailType.EXPIRING:
        certificate = detail["certificate"]
        days = detail["daysRemaining"]
        summary = f"[{tenant}] certificate {certificate['subject']} expires in {days} days"
        facts = [("Days remaining", days), ("Threshold", detail["threshold"])]
        facts += _certificate_facts(certificate)
        return {
            "condition": "expiring",
            "subject": str(certificate["certificateId"]),
            "profile": certificate["profile"],
            "summary": summary,
            "description": adf(summary, facts, footer),
        }
    if event.detail_type is DetailType.REVOKED:
        if detail["revocation"]["reason"] != "keyCompromise":
            return None
        certificate = detail["certificate"]
        summary = (
            f"[{tenant}] key compromise: certificate {certificate['subject']} "
            f"(serial {certificate['serial']}) revoked"
        )
        facts = [("Revoked at", detail["revocation"]["revokedAt"]), ("Reason", "keyCompromise")]
        facts += _certificate_facts(certificate)
        return {
            "condition": "key-compromise",
            "subject": str(certificate["certificateId"]),
            "profile": certificate["profile"],
            "summary": summary,
            "description": adf(summary, facts, footer),
        }
    if event.detail_type is DetailType.CA_UNAVAILABLE:
        summary = f"[{tenant}] CA {detail['ca']} unavailable: {detail['error']}"
        facts = [("CA", detail["ca"]), ("Engine", detail.get("engine")), ("Error", detail["error"])]
        return {
            "condition": "ca-unavailable",
            "subject": str(detail["ca"]),
            "profile": None,
            "summary": summary,
            "description": adf(summary, facts, footer),
        }
    if event.detail_type is DetailType.ISSUANCE_FAILED:
        request = detail["request"]
        failure = detail["failure"]
        certificate = detail.get("certificate") or {}
        # The certificate being renewed, else the one that failed, else (a new issuance
        # without an identity yet) the profile: a failure storm is one ticket, not hundreds.
        subject = request.get("renewing") or certificate.get("certificateId")
        subject = str(subject) if subject else f"profile-{request['profile']}"
        summary = (
            f"[{tenant}] certificate {request['operation']} failed for profile "
            f"{request['profile']}: {failure['code']} at {failure['stage']}"
        )
        facts = [
            ("Failure", failure["code"]),
            ("Stage", failure["stage"]),
            ("Message", failure["message"]),
            ("Operation", request["operation"]),
            ("Renewing", request.get("renewing")),
            ("Device", request.get("deviceId")),
            ("Profile", request["profile"]),
        ]
        return {
            "condition": "issuance-failed",
            "subject": subject,
            "profile": request["profile"],
            "summary": summary,
            "description": adf(summary, facts, footer),
        }
    return None


def labels_for(tenant: str, ticket: Mapping[str, Any]) -> list[str]:
    labels = [
        "certplane",
        label("certplane", "tenant", tenant),
        label("certplane", "condition", ticket["condition"]),
        dedup_label(ticket["condition"], ticket["subject"]),
    ]
    if ticket.get("profile"):
        labels.insert(2, label("certplane", "profile", ticket["profile"]))
    return labels


def _jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the connector ------------------------------------------------------------------------


class JiraConnector:
    """Creates, deduplicates, comments on and closes Jira Cloud issues for certplane events."""

    type_name = "jira"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        project: str,
        issue_type: str = "Task",
        fields: Mapping[str, Any] | None = None,
        sender: HttpSender | None = None,
    ) -> None:
        if not url:
            raise ValueError("a jira connector needs the site URL (https://<site>.atlassian.net)")
        if not project:
            raise ValueError("a jira connector needs a project key")
        self._base = url.rstrip("/") + API
        self._headers = {
            "Authorization": basic_auth(secret, "jira", "email:api_token"),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._project = project
        self._issue_type = issue_type
        self._fields = dict(fields or {})  # e.g. priority, components, customfield_NNNNN
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        if event.detail_type is DetailType.RENEWED:
            self._close_expiring(event)
            return
        ticket = issue_for(event)
        if ticket is None:
            return
        dedup = dedup_label(ticket["condition"], ticket["subject"])
        if self._open_issues(event.tenant, dedup):
            return  # one ticket per certificate and condition
        fields = {
            **self._fields,
            "project": {"key": self._project},
            "issuetype": {"name": self._issue_type},
            "summary": ticket["summary"][:MAX_SUMMARY],
            "description": ticket["description"],
            "labels": labels_for(event.tenant, ticket),
        }
        response = self._call("POST", "/issue", {"fields": fields}, what="create issue")
        if response.status_code != 201:
            raise PermanentDelivery(f"jira create issue: expected 201, got {response.status_code}")

    def _close_expiring(self, event: CertplaneEvent) -> None:
        previous = event.detail["previousCertificate"]
        if not previous.get("certificateId"):
            return
        certificate = event.detail["certificate"]
        comment = adf(
            f"Renewed: replaced by certificate {certificate['subject']} "
            f"(serial {certificate['serial']}).",
            [
                ("New certificate id", certificate["certificateId"]),
                ("New not after", certificate["notAfter"]),
                ("Same key", event.detail.get("sameKey")),
            ],
            f"certplane event {event.event_id} at {event.occurred_at}",
        )
        dedup = dedup_label("expiring", str(previous["certificateId"]))
        for issue_id in self._open_issues(event.tenant, dedup):
            self._call("POST", f"/issue/{issue_id}/comment", {"body": comment}, what="comment")
            found = json_body(
                self._call("GET", f"/issue/{issue_id}/transitions", what="transitions"),
                "jira transitions",
            )
            done = [
                transition
                for transition in found.get("transitions", [])
                if ((transition.get("to") or {}).get("statusCategory") or {}).get("key") == DONE
                and transition.get("isAvailable", True)
            ]
            if not done:
                raise PermanentDelivery(
                    f"jira: issue {issue_id} has no transition to a done status"
                )
            self._call(
                "POST",
                f"/issue/{issue_id}/transitions",
                {"transition": {"id": str(done[0]["id"])}},
                what="transition",
            )

    def _open_issues(self, tenant: str, dedup: str) -> list[str]:
        """Ids of this project's not-done issues carrying the dedup and tenant labels."""
        jql = (
            f"project = {_jql_string(self._project)} AND labels = {_jql_string(dedup)} "
            f"AND labels = {_jql_string(label('certplane', 'tenant', tenant))} "
            "AND statusCategory != Done"
        )
        ids: list[str] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"jql": jql, "fields": ["status"], "maxResults": 50}
            if token:
                query["nextPageToken"] = token
            page = json_body(self._call("POST", "/search/jql", query, what="search"), "jira")
            ids.extend(str(issue["id"]) for issue in page.get("issues", []))
            token = page.get("nextPageToken")
            if page.get("isLast") or not token:
                return ids

    def _call(
        self, method: str, path: str, document: Any = None, *, what: str
    ) -> requests.Response:
        return send(
            self._sender,
            method,
            self._base + path,
            target=f"jira {what}",
            headers=self._headers,
            document=document,
        )
