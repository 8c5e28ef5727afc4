"""DNS providers for dns-01: Route 53 (AWS) and pebble-challtestsrv (tests).

Route 53: one ChangeResourceRecordSets per hosted zone (UPSERT of every `_acme-challenge`
name with all its values), then the `resource_record_sets_changed` waiter until the change
is INSYNC — Route 53's word that every authoritative server answers with the new records.
The IAM role needs route53:ChangeResourceRecordSets (scope it with the
route53:ChangeResourceRecordSetsNormalizedRecordNames condition to `_acme-challenge.*`),
route53:GetChange, and route53:ListHostedZonesByName unless the zone id is configured.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from certbridge.interface import PermanentEngineError, TransientEngineError

logger = logging.getLogger(__name__)

CHANGE_COMMENT = "certplane ACME dns-01"


def _quoted(value: str) -> str:
    """Route 53 takes TXT data in zone-file form: a quoted character string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Route53Provider:
    """TXT records in the public hosted zone that holds each name."""

    def __init__(
        self,
        hosted_zone_id: str | None = None,
        ttl: int = 60,
        wait_seconds: float = 180.0,
        poll_seconds: float = 5.0,
        client: Any = None,
    ) -> None:
        """`hosted_zone_id` pins one zone (and saves the ListHostedZonesByName permission);
        without it the zone is the longest public zone whose name ends the record's."""
        if client is None:
            from botocore.config import Config

            from certbridge.aws_session import engine_client

            client = engine_client("route53", config=Config(connect_timeout=5, read_timeout=15))
        self._client = client
        self._zone_id = hosted_zone_id
        self._ttl = ttl
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds
        self._zones: dict[str, str] = {}

    def zone_for(self, name: str) -> str:
        """The id of the public hosted zone that contains `name`."""
        if self._zone_id:
            return self._zone_id
        labels = name.rstrip(".").lower().split(".")
        for start in range(len(labels) - 1):  # never a bare top-level domain
            candidate = ".".join(labels[start:]) + "."
            if candidate in self._zones:
                return self._zones[candidate]
            zones = self._call("list_hosted_zones_by_name", DNSName=candidate, MaxItems="10")[
                "HostedZones"
            ]
            for zone in zones:
                if zone["Name"] != candidate:
                    break  # sorted by name: the exact matches come first
                if not zone.get("Config", {}).get("PrivateZone", False):
                    self._zones[candidate] = zone["Id"]
                    return zone["Id"]
        raise PermanentEngineError(f"no public Route 53 hosted zone contains {name}")

    def change_batches(
        self, action: str, records: Mapping[str, Sequence[str]]
    ) -> dict[str, dict[str, Any]]:
        """One ChangeBatch per hosted zone for `records` (what set_txt/clear_txt send)."""
        batches: dict[str, dict[str, Any]] = {}
        for name, values in records.items():
            batch = batches.setdefault(
                self.zone_for(name), {"Comment": CHANGE_COMMENT, "Changes": []}
            )
            batch["Changes"].append(
                {
                    "Action": action,
                    "ResourceRecordSet": {
                        "Name": name.rstrip(".") + ".",
                        "Type": "TXT",
                        "TTL": self._ttl,
                        "ResourceRecords": [{"Value": _quoted(value)} for value in values],
                    },
                }
            )
        return batches

    def set_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        changes = [
            self._call("change_resource_record_sets", HostedZoneId=zone, ChangeBatch=batch)[
                "ChangeInfo"
            ]["Id"]
            for zone, batch in self.change_batches("UPSERT", records).items()
        ]
        self._wait(changes)

    def clear_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        """DELETE must name the record exactly as it is; one already gone is fine."""
        from botocore.exceptions import ClientError

        for zone, batch in self.change_batches("DELETE", records).items():
            try:
                self._client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "InvalidChangeBatch":
                    logger.warning("could not remove dns-01 records from %s: %s", zone, error)

    def _wait(self, change_ids: Sequence[str]) -> None:
        from botocore.exceptions import WaiterError

        waiter = self._client.get_waiter("resource_record_sets_changed")
        attempts = max(1, math.ceil(self._wait_seconds / max(self._poll_seconds, 0.001)))
        for change_id in change_ids:
            try:
                waiter.wait(
                    Id=change_id,
                    WaiterConfig={"Delay": self._poll_seconds, "MaxAttempts": attempts},
                )
            except WaiterError as error:
                raise TransientEngineError(
                    f"Route 53 change {change_id} was not in sync after {self._wait_seconds:g} s: "
                    f"{error}"
                ) from None

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, operation)(**params)
        except (ClientError, BotoCoreError) as error:
            raise TransientEngineError(f"Route 53 {operation} failed: {error}") from None


class ChallTestSrvProvider:
    """pebble-challtestsrv's management API: POST /set-txt {host, value}, /clear-txt {host}.

    Test-only: challtestsrv has no authentication and serves whatever it is told.
    """

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._session = requests.Session()
        self._session.trust_env = False  # a local mock: never through a proxy

    def _post(self, path: str, body: dict[str, str]) -> None:
        try:
            response = self._session.post(f"{self._url}{path}", json=body, timeout=self._timeout)
        except requests.RequestException as error:
            raise TransientEngineError(f"challtestsrv {path} failed: {error}") from None
        if response.status_code != 200:
            raise TransientEngineError(f"challtestsrv {path} answered {response.status_code}")

    def set_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        for name, values in records.items():
            for value in values:
                self._post("/set-txt", {"host": name.rstrip(".") + ".", "value": value})

    def clear_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        for name in records:
            self._post("/clear-txt", {"host": name.rstrip(".") + "."})
