"""ServiceNow (Table API): incidents for conditions to act on, certificate CIs for the CMDB.

Incidents (`POST /api/now/table/incident`) for Certificate Issuance Failed, Certificate
Revoked for keyCompromise and CA Unavailable. Each condition has a stable `correlation_id`
(`certplane/<tenant>/<condition>/<certificate id, ca or profile>`); the connector first asks
for an active incident with it (`GET ...?sysparm_query=correlation_id=<id>^active=true`) and
creates one only when there is none, so a redelivery or a failure storm is one incident.
`urgency`/`impact` are "1" (high) for key compromise and CA outage, "2" for failures;
`priority` is left to ServiceNow's impact x urgency lookup.

CMDB: each Certificate Issued / Renewed upserts the certificate in `cmdb_ci_certificate`:
query by fingerprint or serial number, then `PATCH /{sys_id}` or `POST`. Only columns the
ServiceNow discovery docs name are written (vendor-apis.md [V]): `name` (base cmdb_ci),
`fingerprint` (SHA-256, lower-case hex) with `fingerprint_algorithm`, `serial_number`,
`subject`, `issuer`, `valid_from`/`valid_to` (UTC `YYYY-MM-DD HH:mm:ss`), `key_size`,
`is_ca`, `version`. Every value is sent as a string. The Table API has no idempotency key:
writes for one certificate must not run concurrently (one SQS message group per certificate
or a single consumer) or two CIs can appear.

Auth is Basic `user:password` (the secret); `url` is `https://<instance>.service-now.com`.
The user needs `itil` (incident) and write access to `cmdb_ci_certificate`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import requests

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery
from connectors.http import HttpSender
from connectors.jira import basic_auth, json_body, send

TABLE = "/api/now/table"
INCIDENT = "incident"
CERTIFICATE_CI = "cmdb_ci_certificate"
MAX_SHORT_DESCRIPTION = 160
HIGH, MEDIUM = "1", "2"
MAX_CORRELATION_ID = 100


def correlation_id(tenant: str, condition: str, subject: str) -> str:
    """Stable per condition; `^` (encoded-query separator) never in it; at most 100 chars
    (the column's usual size), hashed when longer rather than cut into a collision."""
    key = f"certplane/{tenant}/{condition}/{subject}".replace("^", "_")
    if len(key) > MAX_CORRELATION_ID:
        key = f"certplane/{condition}/" + hashlib.sha256(key.encode()).hexdigest()[:48]
    return key


def incident_for(event: CertplaneEvent) -> dict[str, str] | None:
    """The incident fields (all strings) for an event that calls for one, else None."""
    detail = event.detail
    tenant = event.tenant
    reference = (
        f"certplane event {event.event_id} ({event.detail_type.value}) at {event.occurred_at}"
    )
    if event.detail_type is DetailType.REVOKED:
        if detail["revocation"]["reason"] != "keyCompromise":
            return None
        certificate = detail["certificate"]
        key = correlation_id(tenant, "key-compromise", str(certificate["certificateId"]))
        short = (
            f"[{tenant}] key compromise: certificate {certificate['subject']} "
            f"(serial {certificate['serial']}) revoked"
        )
        lines = [
            short,
            f"Revoked at: {detail['revocation']['revokedAt']}",
            *_certificate_lines(certificate),
            reference,
        ]
        return _incident(key, short, lines, HIGH)
    if event.detail_type is DetailType.CA_UNAVAILABLE:
        key = correlation_id(tenant, "ca-unavailable", str(detail["ca"]))
        short = f"[{tenant}] CA {detail['ca']} unavailable: {detail['error']}"
        lines = [short, f"Engine: {detail.get('engine', '-')}", reference]
        return _incident(key, short, lines, HIGH)
    if event.detail_type is DetailType.ISSUANCE_FAILED:
        request = detail["request"]
        failure = detail["failure"]
        certificate = detail.get("certificate") or {}
        subject = request.get("renewing") or certificate.get("certificateId")
        subject = str(subject) if subject else f"profile-{request['profile']}"
        key = correlation_id(tenant, "issuance-failed", subject)
        short = (
            f"[{tenant}] certificate {request['operation']} failed for profile "
            f"{request['profile']}: {failure['code']} at {failure['stage']}"
        )
        lines = [
            short,
            f"Message: {failure['message']}",
            f"Device: {request.get('deviceId') or '-'}",
            f"Renewing: {request.get('renewing') or '-'}",
            reference,
        ]
        return _incident(key, short, lines, MEDIUM)
    return None


def _certificate_lines(certificate: Mapping[str, Any]) -> list[str]:
    return [
        f"Subject: {certificate['subject']}",
        f"Serial: {certificate['serial']}",
        f"Certificate id: {certificate.get('certificateId')}",
        f"Issuer: {certificate.get('issuer')}",
        f"CA: {certificate['ca']}  Profile: {certificate['profile']}",
        f"Device: {certificate['deviceId']}",
    ]


def _incident(key: str, short: str, lines: list[str], level: str) -> dict[str, str]:
    return {
        "short_description": short[:MAX_SHORT_DESCRIPTION],
        "description": "\n".join(lines),
        "correlation_id": key,
        "correlation_display": "certplane",
        "urgency": level,
        "impact": level,
    }


def servicenow_datetime(timestamp: str) -> str:
    """`2027-12-01T00:00:00Z` -> `2027-12-01 00:00:00` (UTC, as internal values are read)."""
    return timestamp[:19].replace("T", " ")


def _common_name(subject: str) -> str:
    match = re.search(r"(?:^|,)\s*CN=([^,]+)", subject)
    return match.group(1).strip() if match else subject


def ci_fields(certificate: Mapping[str, Any]) -> dict[str, str]:
    """cmdb_ci_certificate columns for an issued certificate, all strings."""
    fields = {
        "name": _common_name(str(certificate["subject"])),
        "fingerprint": str(certificate["fingerprints"]["sha256"]),
        "fingerprint_algorithm": "SHA-256",
        "serial_number": str(certificate["serial"]),
        "subject": str(certificate["subject"]),
        "issuer": str(certificate["issuer"]),
        "valid_from": servicenow_datetime(str(certificate["notBefore"])),
        "valid_to": servicenow_datetime(str(certificate["notAfter"])),
        "is_ca": "false",
        "version": "3",
    }
    size = re.search(r"(\d{3,5})", str(certificate.get("keyAlgorithm", "")))
    if size:  # "RSA-2048" -> 2048, "P-256" -> 256
        fields["key_size"] = size.group(1)
    return fields


class ServiceNowConnector:
    """Opens deduplicated incidents and keeps certificate CIs current through the Table API."""

    type_name = "servicenow"

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        assignment_group: str | None = None,
        caller_id: str | None = None,
        category: str | None = None,
        cmdb: bool = True,
        sender: HttpSender | None = None,
    ) -> None:
        if not url:
            raise ValueError("a servicenow connector needs the instance URL")
        self._base = url.rstrip("/") + TABLE
        self._headers = {
            "Authorization": basic_auth(secret, "servicenow", "user:password"),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._extra = {
            name: value
            for name, value in (
                ("assignment_group", assignment_group),
                ("caller_id", caller_id),
                ("category", category),
            )
            if value
        }
        self._cmdb = cmdb
        self._sender = sender or HttpSender()

    def deliver(self, event: CertplaneEvent) -> None:
        if event.detail_type in (DetailType.ISSUED, DetailType.RENEWED):
            if self._cmdb:
                self._upsert_ci(event.detail["certificate"])
            return
        fields = incident_for(event)
        if fields is None:
            return
        query = f"correlation_id={fields['correlation_id']}^active=true"
        if self._find(INCIDENT, query, "sys_id,number"):
            return  # an active incident already tracks this condition
        self._write("POST", INCIDENT, {**self._extra, **fields}, expect=201)

    def _upsert_ci(self, certificate: Mapping[str, Any]) -> None:
        fields = ci_fields(certificate)
        query = f"fingerprint={fields['fingerprint']}^ORserial_number={fields['serial_number']}"
        found = self._find(CERTIFICATE_CI, query, "sys_id")
        if found:
            self._write("PATCH", f"{CERTIFICATE_CI}/{found[0]['sys_id']}", fields, expect=200)
        else:
            self._write("POST", CERTIFICATE_CI, fields, expect=201)

    def _find(self, table: str, query: str, fields: str) -> list[dict[str, Any]]:
        response = send(
            self._sender,
            "GET",
            f"{self._base}/{table}",
            target=f"servicenow {table} query",
            headers=self._headers,
            params={"sysparm_query": query, "sysparm_fields": fields, "sysparm_limit": "1"},
        )
        result = json_body(response, f"servicenow {table} query").get("result")
        if not isinstance(result, list):
            raise PermanentDelivery(f"servicenow {table} query: no result list")
        return result

    def _write(self, method: str, path: str, fields: Mapping[str, str], *, expect: int) -> None:
        table = path.split("/")[0]
        response: requests.Response = send(
            self._sender,
            method,
            f"{self._base}/{path}",
            target=f"servicenow {table} {method}",
            headers=self._headers,
            document=dict(fields),
        )
        if response.status_code != expect:
            raise PermanentDelivery(
                f"servicenow {table} {method}: expected {expect}, got {response.status_code}"
            )
