"""The embedded AWS: moto in process, provisioned from the same specs as the CDK stacks."""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any

import boto3
from moto import mock_aws

from certplane.resources import BUCKETS, DEV_EVENT_TAP, EVENT_BUS, TABLES, environment

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


def _cache_jsonpath_parsing() -> None:
    """moto's EventBridge parses eight JSONPath expressions for every event and target, and
    jsonpath_ng builds a new parser (yacc tables) each time: about a third of an issuance's
    cost in `certplane dev`. Parsed expressions are immutable, so they are cached."""
    import jsonpath_ng.ext  # moto[events]'s dependency, imported by moto on first use too

    if not hasattr(jsonpath_ng.ext.parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)


_QUERYING = threading.local()


def _query_without_presort() -> None:
    """moto's `Table.query` filters `all_items()`, which first sorts the WHOLE table by key
    with Python comparisons: O(n log n) per Query, most of an enrollment's time once the
    inventory holds a few thousand certificates. Query sorts what it keeps afterwards, by the
    index key and then the table's unique key (a total order), so during a Query the items
    are handed over unsorted; the results are the same. Scans keep the sorted order."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "certplane_unsorted", False):
        return
    sorted_items, query = Table.all_items, Table.query

    def all_items(self: Table) -> list[Any]:
        if not getattr(_QUERYING, "active", False):
            return sorted_items(self)
        if self.range_key_attr:
            return [item for by_range in self.items.values() for item in by_range.values()]
        return list(self.items.values())

    def unsorted_query(self: Table, *args: Any, **kwargs: Any) -> Any:
        _QUERYING.active = True
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERYING.active = False

    unsorted_query.certplane_unsorted = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = unsorted_query  # type: ignore[method-assign]


def dev_environment() -> dict[str, str]:
    """What a Lambda would find in its environment, pointed at the embedded AWS."""
    return {
        "AWS_ACCESS_KEY_ID": "certplane-dev",
        "AWS_SECRET_ACCESS_KEY": "certplane-dev",
        "AWS_SESSION_TOKEN": "certplane-dev",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "certplane",
        **environment(),
    }


class EmbeddedAws:
    """Starts moto, creates tables, bus and the dev event tap; stops moto on exit."""

    def __init__(self) -> None:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update(dev_environment())
        self._mock = mock_aws(config=MOTO_CONFIG)
        self.tap_queue_url: str | None = None
        self._sqs: Any = None

    def start(self) -> None:
        _cache_jsonpath_parsing()
        _query_without_presort()
        self._mock.start()
        self._provision()
        self._sqs = boto3.client("sqs")  # one client: creating one costs more than a call

    def stop(self) -> None:
        self._mock.stop()

    @property
    def table_names(self) -> list[str]:
        return [os.environ[spec.env_var] for spec in TABLES]

    def _provision(self) -> None:
        dynamodb = boto3.client("dynamodb")
        for spec in TABLES:
            name = os.environ[spec.env_var]
            dynamodb.create_table(**spec.create_table_kwargs(name))
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
        s3 = boto3.client("s3")
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=os.environ[bucket.env_var])
        events = boto3.client("events")
        bus_name = os.environ[EVENT_BUS.env_var]
        events.create_event_bus(Name=bus_name)
        sqs = boto3.client("sqs")
        self.tap_queue_url = sqs.create_queue(QueueName=DEV_EVENT_TAP.queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=self.tap_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        events.put_rule(
            Name=DEV_EVENT_TAP.name,
            EventBusName=bus_name,
            EventPattern=json.dumps(DEV_EVENT_TAP.pattern),
        )
        events.put_targets(
            Rule=DEV_EVENT_TAP.name,
            EventBusName=bus_name,
            Targets=[{"Id": "tap", "Arn": queue_arn}],
        )

    def drain_event_tap(self) -> list[dict[str, Any]]:
        """Take every event the tap queue holds (EventBridge envelopes, oldest first)."""
        sqs = self._sqs
        drained: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.tap_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return drained
            for message in messages:
                drained.append(json.loads(message["Body"]))
            sqs.delete_message_batch(
                QueueUrl=self.tap_queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            if len(messages) < 10:  # moto returns all it holds: the queue is empty now
                return drained
