"""Connector delivery repair: list and redrive a connector's DLQ, replay the bus archive.

Names come from `connectors.routing.connector_route`, the same function the stack and
`certplane dev` build a connector's rule, queue and DLQ from, so an operator only names the
connector. These functions take boto3 clients; `certplane events` builds them from the
operator's profile and region.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from certplane.events import DetailType

# connectors.batch's attribute names, repeated so the core does not import `connectors`
# (tests/service/test_events_cli.py checks they stay equal).
REASON_ATTRIBUTE = "certplane-failure-reason"
CONNECTOR_ATTRIBUTE = "certplane-connector"
EVENT_ID_ATTRIBUTE = "certplane-event-id"
NO_REASON = "(no reason: moved by the redrive policy after maxReceiveCount receives)"
SQS_BATCH = 10
HOLD_SECONDS = 120  # messages being redriven stay hidden from other readers this long
MOVE_TASK_UNSUPPORTED = {"UnsupportedOperation", "InvalidAction", "NotImplemented", "501"}
REPLAY_DONE = {"COMPLETED", "FAILED", "CANCELLED"}


class OperationError(Exception):
    """A refusal to show the operator as one line."""


# -- names -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorQueues:
    connector: str
    rule_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str


def connector_names(connector: str) -> tuple[str, str, str]:
    """(rule, queue, dlq) names of `connector`, derived exactly as the stack derives them."""
    from connectors.routing import connector_route  # names only; pattern inputs are dummies

    try:
        route = connector_route(connector, "-", [next(iter(DetailType)).value])
    except ValueError as error:
        raise OperationError(str(error)) from None
    return route.name, route.queue_name, route.dlq_name


def connector_queues(sqs: Any, connector: str) -> ConnectorQueues:
    rule, queue_name, dlq_name = connector_names(connector)
    urls = []
    for name in (queue_name, dlq_name):
        try:
            urls.append(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as error:
            raise OperationError(f"queue {name} not found ({_code(error)})") from None
    arns = [
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for url in urls
    ]
    return ConnectorQueues(connector, rule, urls[0], arns[0], urls[1], arns[1])


# -- reading the DLQ ---------------------------------------------------------------------


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]  # MessageAttributes as received
    receive_count: int
    sent_at: datetime.datetime | None

    @property
    def reason(self) -> str:
        return _attribute(self.attributes, REASON_ATTRIBUTE) or NO_REASON

    @property
    def event_id(self) -> str:
        return _attribute(self.attributes, EVENT_ID_ATTRIBUTE) or _body_field(
            self.body, "detail", "eventId"
        )

    @property
    def detail_type(self) -> str:
        return _body_field(self.body, "detail-type")

    def view(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "event_id": self.event_id,
            "detail_type": self.detail_type,
            "reason": self.reason,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def _attribute(attributes: dict[str, Any], name: str) -> str:
    return str((attributes.get(name) or {}).get("StringValue") or "")


def _body_field(body: str, *path: str) -> str:
    try:
        node: Any = json.loads(body)
        for key in path:
            node = node[key]
        return str(node)
    except (ValueError, KeyError, TypeError):
        return "?"


def _receive(sqs: Any, url: str, limit: int, hold: int) -> list[DlqMessage]:
    response = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max(1, min(SQS_BATCH, limit)),
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
        VisibilityTimeout=hold,
        WaitTimeSeconds=0,
    )
    received = []
    for raw in response.get("Messages", []):
        system = raw.get("Attributes", {})
        sent = system.get("SentTimestamp")
        received.append(
            DlqMessage(
                message_id=raw["MessageId"],
                receipt_handle=raw["ReceiptHandle"],
                body=raw["Body"],
                attributes=raw.get("MessageAttributes", {}),
                receive_count=int(system.get("ApproximateReceiveCount", 0)),
                sent_at=datetime.datetime.fromtimestamp(int(sent) / 1000, datetime.UTC)
                if sent
                else None,
            )
        )
    return received


def _release(sqs: Any, url: str, messages: list[DlqMessage]) -> None:
    """Make held messages visible again at once."""
    for start in range(0, len(messages), SQS_BATCH):
        chunk = messages[start : start + SQS_BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def peek_dlq(sqs: Any, queues: ConnectorQueues, limit: int = 100) -> list[DlqMessage]:
    """Up to `limit` DLQ messages, left in the DLQ (received, then made visible again)."""
    seen: dict[str, DlqMessage] = {}
    while len(seen) < limit:
        batch = _receive(sqs, queues.dlq_url, limit - len(seen), HOLD_SECONDS)
        fresh = [m for m in batch if m.message_id not in seen]
        if not fresh:
            break
        seen.update((m.message_id, m) for m in fresh)
    messages = list(seen.values())
    _release(sqs, queues.dlq_url, messages)
    return messages


# -- redrive -----------------------------------------------------------------------------


@dataclass
class RedriveResult:
    method: str  # "move-task", "copy" or "dry-run"
    moved: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    detail_types: Counter[str] = field(default_factory=Counter)
    event_ids: list[str] = field(default_factory=list)
    task_handle: str | None = None
    task_status: str | None = None

    def count(self, message: DlqMessage) -> None:
        self.reasons[message.reason] += 1
        self.detail_types[message.detail_type] += 1
        self.event_ids.append(message.event_id)


def redrive(
    sqs: Any,
    queues: ConnectorQueues,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    use_move_task: bool = True,
    wait_seconds: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveResult:
    """Move the DLQ's messages back to the connector's queue, bodies unchanged.

    Without a bound, SQS's own StartMessageMoveTask does it server side; where that is not
    available (or `max_messages` bounds the count, which a move task cannot) messages are
    received, sent to the queue with body and attributes unchanged, and deleted from the DLQ
    only once sent. A dry run reads what would move and leaves it in the DLQ.
    """
    if dry_run:
        result = RedriveResult("dry-run")
        for message in peek_dlq(sqs, queues, max_messages or 10_000):
            result.count(message)
        return result
    if use_move_task and max_messages is None:
        summary = peek_dlq(sqs, queues, 1000)
        task = _move_task(sqs, queues, wait_seconds, sleep)
        if task is not None:
            result = RedriveResult("move-task", task_handle=task.get("TaskHandle"))
            result.task_status = task.get("Status")
            result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            result.failed = 0 if result.task_status == "COMPLETED" else 1
            for message in summary:
                result.count(message)
            return result
    return _copy(sqs, queues, max_messages)


def _move_task(
    sqs: Any, queues: ConnectorQueues, wait_seconds: float, sleep: Callable[[float], None]
) -> dict[str, Any] | None:
    """Run a StartMessageMoveTask DLQ → queue and wait for it; None if SQS lacks it."""
    try:
        handle = sqs.start_message_move_task(
            SourceArn=queues.dlq_arn, DestinationArn=queues.queue_arn
        )["TaskHandle"]
    except ClientError as error:
        if _code(error) in MOVE_TASK_UNSUPPORTED or "not yet implemented" in str(error):
            return None
        raise OperationError(f"StartMessageMoveTask refused: {error}") from None
    except NotImplementedError:
        return None
    deadline = time.monotonic() + wait_seconds
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=queues.dlq_arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        if task.get("Status") in {"COMPLETED", "FAILED", "CANCELLED"}:
            return {**task, "TaskHandle": handle}
        if time.monotonic() >= deadline:
            return {**task, "TaskHandle": handle, "Status": task.get("Status", "RUNNING")}
        sleep(2.0)


def _send_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Received MessageAttributes in the shape SendMessage accepts."""
    out = {}
    for name, value in attributes.items():
        entry = {"DataType": value["DataType"]}
        for key in ("StringValue", "BinaryValue"):
            if key in value:
                entry[key] = value[key]
        out[name] = entry
    return out


def _copy(sqs: Any, queues: ConnectorQueues, max_messages: int | None) -> RedriveResult:
    result = RedriveResult("copy")
    limit = max_messages if max_messages is not None else float("inf")
    moved_ids: set[str] = set()
    while result.moved + result.failed < limit:
        batch = _receive(
            sqs,
            queues.dlq_url,
            int(min(SQS_BATCH, limit - result.moved - result.failed)),
            HOLD_SECONDS,
        )
        batch = [m for m in batch if m.message_id not in moved_ids]
        if not batch:
            break
        sent = sqs.send_message_batch(
            QueueUrl=queues.queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m.body,
                    **(
                        {"MessageAttributes": _send_attributes(m.attributes)}
                        if m.attributes
                        else {}
                    ),
                }
                for i, m in enumerate(batch)
            ],
        )
        ok = {int(entry["Id"]) for entry in sent.get("Successful", [])}
        done = [m for i, m in enumerate(batch) if i in ok]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queues.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(done)
                ],
            )
        for message in done:
            moved_ids.add(message.message_id)
            result.count(message)
        result.moved += len(done)
        failed = [m for i, m in enumerate(batch) if i not in ok]
        result.failed += len(failed)
        if failed:  # left in the DLQ, visible again for the next redrive
            _release(sqs, queues.dlq_url, failed)
            break
    return result


# -- replay ------------------------------------------------------------------------------

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """ISO 8601 (naive means UTC) or a span ago: `90m`, `6h`, `2d`, `1w`."""
    now = now or datetime.datetime.now(datetime.UTC)
    match = _AGO.match(text.strip())
    if match:
        return now - datetime.timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise OperationError(
            f"bad time {text!r}: use ISO 8601 (2026-12-01T08:00Z) or a span ago (6h, 2d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


@dataclass
class ReplayResult:
    name: str
    archive: str
    since: datetime.datetime
    until: datetime.datetime
    filter_arns: list[str]
    state: str
    reason: str = ""
    last_replayed: datetime.datetime | None = None


def bus_archive(events: Any, bus_name: str, archive: str | None = None) -> tuple[str, str]:
    """(bus ARN, archive ARN): the one archive of the bus unless `archive` names it."""
    try:
        bus_arn = events.describe_event_bus(Name=bus_name)["Arn"]
    except ClientError as error:
        raise OperationError(f"event bus {bus_name} not found ({_code(error)})") from None
    if archive:
        try:
            return bus_arn, events.describe_archive(ArchiveName=archive)["ArchiveArn"]
        except ClientError as error:
            raise OperationError(f"archive {archive} not found ({_code(error)})") from None
    found = events.list_archives(EventSourceArn=bus_arn).get("Archives", [])
    found = [a for a in found if a.get("State", "ENABLED") == "ENABLED"]
    if not found:
        raise OperationError(f"event bus {bus_name} has no enabled archive")
    if len(found) > 1:
        names = ", ".join(a["ArchiveName"] for a in found)
        raise OperationError(f"event bus {bus_name} has several archives ({names}): pick --archive")
    name = found[0]["ArchiveName"]
    return bus_arn, events.describe_archive(ArchiveName=name)["ArchiveArn"]


def replay(
    events: Any,
    bus_name: str,
    since: datetime.datetime,
    until: datetime.datetime | None = None,
    *,
    connector: str | None = None,
    archive: str | None = None,
    wait_seconds: float = 600.0,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime.datetime | None = None,
) -> ReplayResult:
    """StartReplay of [since, until) from the bus archive to the bus, or to one connector's
    rule only (FilterArns), then poll DescribeReplay until it ends or `wait_seconds` pass."""
    now = now or datetime.datetime.now(datetime.UTC)
    until = until or now
    if since >= until:
        raise OperationError("--since must be before --until")
    bus_arn, archive_arn = bus_archive(events, bus_name, archive)
    destination: dict[str, Any] = {"Arn": bus_arn}
    filter_arns: list[str] = []
    if connector:
        rule_name, _, _ = connector_names(connector)
        try:
            rule = events.describe_rule(Name=rule_name, EventBusName=bus_name)
        except ClientError as error:
            raise OperationError(f"rule {rule_name} not found ({_code(error)})") from None
        filter_arns = [rule["Arn"]]
        destination["FilterArns"] = filter_arns
    name = f"certplane-{connector or 'all'}-{now:%Y%m%dT%H%M%S}"[:64]
    try:
        events.start_replay(
            ReplayName=name,
            Description=f"certplane events replay {since.isoformat()} .. {until.isoformat()}",
            EventSourceArn=archive_arn,
            EventStartTime=since,
            EventEndTime=until,
            Destination=destination,
        )
    except ClientError as error:
        raise OperationError(f"StartReplay refused: {error}") from None
    result = ReplayResult(name, archive_arn, since, until, filter_arns, "STARTING")
    deadline = time.monotonic() + wait_seconds
    while True:
        described = events.describe_replay(ReplayName=name)
        result.state = described.get("State", "?")
        result.reason = described.get("StateReason", "")
        result.last_replayed = described.get("EventLastReplayedTime")
        if result.state in REPLAY_DONE or time.monotonic() >= deadline:
            return result
        sleep(poll_seconds)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "error"))
