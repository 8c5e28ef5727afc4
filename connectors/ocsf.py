"""OCSF records as JSON lines in S3, laid out as an Amazon Security Lake custom source.

Class: **Entity Management** (`class_uid` 3004, category Identity & Access Management,
`category_uid` 3), OCSF **1.1.0** (`metadata.version`): OCSF 1.8.0 has no certificate-lifecycle
class, and Security Lake validates custom sources against OCSF 1.1 and allows one class per
source, so every certplane event becomes an Entity Management record whose `entity` (a
`managed_entity`, required) is the certificate: `type_id` 99 (Other), `type` "Certificate",
`uid` the certificate id (SHA-1 of the DER), `name` the subject, the certificate summary in
`data`. Only the 1.1 activities are used (5-13 appeared in 1.3):

| certplane event             | activity_id           | status_id | severity_id        |
|-----------------------------|-----------------------|-----------|--------------------|
| Certificate Issued          | 1 Create              | 1 Success | 1 Informational    |
| Certificate Renewed         | 3 Update              | 1 Success | 1 Informational    |
| Certificate Revoked         | 4 Delete              | 1 Success | 3 Medium, 5 if key |
| Certificate Issuance Failed | 1 Create              | 2 Failure | 4 High             |
| Certificate Expiring        | 99 Other "Expiring"   | 0 Unknown | 3 Medium           |
| Certificate Expired         | 99 Other "Expire"     | 0 Unknown | 4 High             |
| CA Unavailable              | 99 Other "Unavailable"| 2 Failure | 4 High             |
| CRL Published               | 99 Other "Publish"    | 1 Success | 1 Informational    |

("5 if key": a keyCompromise revocation is Critical.) CA Unavailable's entity is the CA
(`type` "Certificate Authority"), CRL Published's the CRL (`type` "CRL").

`type_uid` = class_uid·100 + activity_id; `time` is epoch **milliseconds**; `metadata.uid` is the
certplane event id (receivers deduplicate on it); the tenant goes to `metadata.tenant_uid`.

Layout: `s3://<bucket>/<prefix>/region=<region>/accountId=<accountId>/eventDay=<YYYYMMDD>/
<first-ms>-<uuid>.jsonl`, the prefix being the one Security Lake assigns the source
(`ext/<source-name>`, the default when the URL gives none). One object per batch (per event
day, if a batch spans midnight), rows sorted by time. Caveat: Security Lake itself ingests
**Parquet** only; these JSON lines suit an OCSF-aware pipeline (or a Glue/Firehose conversion
to Parquet) in front of the lake. The connector has no secret: it writes with the Lambda's role.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery, RetryableDelivery
from connectors.slack import summary

OCSF_VERSION = "1.1.0"
CLASS_UID = 3004  # Entity Management
CATEGORY_UID = 3  # Identity & Access Management
CREATE, UPDATE, DELETE, OTHER = 1, 3, 4, 99
SUCCESS, FAILURE, UNKNOWN_STATUS = 1, 2, 0
INFORMATIONAL, MEDIUM, HIGH, CRITICAL = 1, 3, 4, 5
ACTIVITY_NAMES = {CREATE: "Create", UPDATE: "Update", DELETE: "Delete"}
RETRYABLE_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeTooSkewed",
}

# detail type -> (activity_id, activity_name for Other, status_id, severity_id)
MAPPING: dict[DetailType, tuple[int, str, int, int]] = {
    DetailType.ISSUED: (CREATE, "", SUCCESS, INFORMATIONAL),
    DetailType.RENEWED: (UPDATE, "", SUCCESS, INFORMATIONAL),
    DetailType.REVOKED: (DELETE, "", SUCCESS, MEDIUM),
    DetailType.ISSUANCE_FAILED: (CREATE, "", FAILURE, HIGH),
    DetailType.EXPIRING: (OTHER, "Expiring", UNKNOWN_STATUS, MEDIUM),
    DetailType.EXPIRED: (OTHER, "Expire", UNKNOWN_STATUS, HIGH),
    DetailType.CA_UNAVAILABLE: (OTHER, "Unavailable", FAILURE, HIGH),
    DetailType.CRL_PUBLISHED: (OTHER, "Publish", SUCCESS, INFORMATIONAL),
}


def epoch_ms(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _entity(event: CertplaneEvent) -> dict[str, Any]:
    detail = event.detail
    certificate: Mapping[str, Any] | None = event.certificate
    if certificate:
        return {
            "type_id": 99,
            "type": "Certificate",
            "uid": str(certificate["certificateId"]),
            "name": str(certificate.get("subject") or certificate["certificateId"]),
            "data": dict(certificate),
        }
    if event.detail_type is DetailType.ISSUANCE_FAILED:
        request = detail.get("request", {})
        return {
            "type_id": 99,
            "type": "Certificate",
            "name": str(request.get("deviceId") or request.get("profile") or "certificate"),
            "data": {"request": dict(request)},
        }
    if event.detail_type is DetailType.CRL_PUBLISHED:
        return {
            "type_id": 99,
            "type": "CRL",
            "uid": f"{detail['ca']}#{detail['crlNumber']}",
            "name": str(detail["ca"]),
            "data": {
                k: detail[k]
                for k in ("ca", "crlNumber", "entries", "sizeBytes", "url", "shard")
                if k in detail
            },
        }
    return {
        "type_id": 99,
        "type": "Certificate Authority",
        "name": str(detail.get("ca", "unknown")),
    }


def ocsf_record(event: CertplaneEvent, product_version: str = "1") -> dict[str, Any]:
    """One Entity Management (3004) record, OCSF 1.1.0."""
    activity_id, other_name, status_id, severity_id = MAPPING[event.detail_type]
    detail = event.detail
    revocation = detail.get("revocation") or {}
    if revocation.get("reason") == "keyCompromise":
        severity_id = CRITICAL
    record: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Entity Management",
        "category_uid": CATEGORY_UID,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": ACTIVITY_NAMES.get(activity_id, other_name),
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Entity Management: {ACTIVITY_NAMES.get(activity_id, other_name)}",
        "time": epoch_ms(event.occurred_at),
        "timezone_offset": 0,
        "severity_id": severity_id,
        "status_id": status_id,
        "message": summary(event),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event.event_id,
            "tenant_uid": event.tenant,
            "product": {
                "name": "certplane",
                "vendor_name": "certplane",
                "version": product_version,
            },
            "log_name": event.detail_type.value,
        },
        "entity": _entity(event),
        "actor": {"user": {"name": str(detail.get("actor", "certplane"))}},
        "unmapped": {"detail_type": event.detail_type.value},
    }
    if status_id == FAILURE:
        failure = detail.get("failure") or {}
        record["status_detail"] = str(failure.get("message") or detail.get("error") or "failure")
        if failure.get("code"):
            record["status_code"] = str(failure["code"])
    if revocation:
        record["comment"] = f"revoked: {revocation.get('reason')}"
    if event.detail_type is DetailType.EXPIRING:
        record["comment"] = f"{detail['daysRemaining']} days remaining"
    return record


def event_day(record: Mapping[str, Any]) -> str:
    return datetime.datetime.fromtimestamp(record["time"] / 1000, datetime.UTC).strftime("%Y%m%d")


class OcsfS3Connector:
    """Writes batches of events as OCSF JSON lines to a Security Lake custom-source prefix."""

    type_name = "ocsf"

    def __init__(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        region: str,
        account_id: str,
        source_name: str = "certplane",
        product_version: str = "1",
        s3_client: Any = None,
    ) -> None:
        parsed = urlparse(url or "")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError("an ocsf connector needs an s3://bucket[/prefix] url")
        if not (len(account_id) == 12 and account_id.isdigit()):
            raise ValueError("ocsf connector: account_id must be a 12-digit AWS account id")
        if not region or not 1 <= len(source_name) <= 20:
            raise ValueError("ocsf connector: region is required, source_name is 1-20 characters")
        self._bucket = parsed.netloc
        self._prefix = parsed.path.strip("/") or f"ext/{source_name}"
        self._region = region
        self._account = account_id
        self._product_version = product_version
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3", region_name=region)
        self._s3 = s3_client

    def key_for(self, day: str, first_ms: int) -> str:
        return (
            f"{self._prefix}/region={self._region}/accountId={self._account}/eventDay={day}/"
            f"{first_ms}-{uuid.uuid4().hex}.jsonl"
        )

    def deliver(self, event: CertplaneEvent) -> None:
        self.deliver_many([event])

    def deliver_many(self, events: Sequence[CertplaneEvent]) -> None:
        records = sorted(
            (ocsf_record(e, self._product_version) for e in events), key=lambda r: r["time"]
        )
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_day[event_day(record)].append(record)
        for day, rows in by_day.items():
            body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
            self._put(self.key_for(day, rows[0]["time"]), body)

    def _put(self, key: str, body: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType="application/x-ndjson"
            )
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            reason = f"ocsf: s3 PutObject {code or status}"
            if code in RETRYABLE_S3_CODES or status >= 500 or status in (408, 429):
                raise RetryableDelivery(reason) from error
            raise PermanentDelivery(reason) from error
        except BotoCoreError as error:  # endpoint unreachable, credentials not yet available
            raise RetryableDelivery(f"ocsf: s3 unreachable ({type(error).__name__})") from error
