"""`certplane events`: repair connector delivery in the deployed account (boto3, not the API).

`dlq` lists what a connector gave up on, `redrive` moves its DLQ back to its queue, `replay`
re-delivers events from the bus archive, to every rule or to one connector's rule.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from certplane.cli.options import AsJson, Profile, Region, aws_session, errors
from certplane.cli.options import fail as _fail
from certplane.events import EVENT_BUS_DEFAULT, EVENT_BUS_ENV
from certplane.operations import events as ops

app = typer.Typer(no_args_is_help=True, help=__doc__)
console = Console()

Connector = Annotated[str, typer.Option(help="Connector name (its connectors entry in the config)")]


session = aws_session  # tests replace this


def _run(action: Any) -> Any:
    try:
        return action()
    except ops.OperationError as error:
        raise _fail(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise _fail(f"AWS: {error}") from None


def _reasons_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("count", justify="right")
    table.add_column("failure reason")
    for reason, count in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(str(count), reason)
    return table


@app.command("dlq")
def dlq(
    connector: Connector,
    limit: Annotated[int, typer.Option("--max", min=1, help="Messages to read at most")] = 100,
    region: Region = None,
    profile: Profile = None,
    as_json: AsJson = False,
) -> None:
    """List a connector's dead-lettered events (they stay in the DLQ)."""
    sqs = session(region, profile).client("sqs")
    queues = _run(lambda: ops.connector_queues(sqs, connector))
    messages = _run(lambda: ops.peek_dlq(sqs, queues, limit))
    if as_json:
        typer.echo(json.dumps([m.view() for m in messages]))
        return
    table = Table("event id", "detail-type", "reason", "receives", "dead-lettered at")
    for m in messages:
        table.add_row(
            m.event_id,
            m.detail_type,
            m.reason,
            str(m.receive_count),
            m.sent_at.isoformat(timespec="seconds") if m.sent_at else "",
        )
    console.print(table)
    errors.print(f"{len(messages)} message(s) in {queues.dlq_url}", highlight=False)


@app.command("redrive")
def redrive(
    connector: Connector,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Move at most N (default: all)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would move; move nothing")] = False,
    move_task: Annotated[
        bool, typer.Option(help="Use SQS StartMessageMoveTask when --max is not given")
    ] = True,
    region: Region = None,
    profile: Profile = None,
    as_json: AsJson = False,
) -> None:
    """Move a connector's DLQ back to its queue, bodies unchanged, for delivery again."""
    sqs = session(region, profile).client("sqs")
    queues = _run(lambda: ops.connector_queues(sqs, connector))
    result = _run(
        lambda: ops.redrive(
            sqs, queues, max_messages=max_messages, dry_run=dry_run, use_move_task=move_task
        )
    )
    found = sum(result.reasons.values())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "connector": connector,
                    "method": result.method,
                    "moved": result.moved,
                    "failed": result.failed,
                    "found": found,
                    "task_status": result.task_status,
                    "reasons": dict(result.reasons),
                    "detail_types": dict(result.detail_types),
                    "event_ids": result.event_ids,
                }
            )
        )
    else:
        if dry_run:
            console.print(
                f"[bold]dry run[/bold]: {found} message(s) would move "
                f"{queues.dlq_url} → {queues.queue_url}; nothing moved",
                highlight=False,
            )
        else:
            how = "SQS message move task" if result.method == "move-task" else "receive/send/delete"
            console.print(
                f"moved [bold]{result.moved}[/bold] message(s) {queues.dlq_url} → "
                f"{queues.queue_url} ({how})"
                + (f", [red]{result.failed} failed[/red]" if result.failed else ""),
                highlight=False,
            )
            if result.task_status and result.task_status != "COMPLETED":
                console.print(f"move task {result.task_handle}: {result.task_status}")
        if result.reasons:
            console.print(_reasons_table("failure reasons", dict(result.reasons)))
        if result.detail_types:
            console.print(_reasons_table("detail-types", dict(result.detail_types)))
    if result.failed:
        raise typer.Exit(1)


@app.command("replay")
def replay(
    since: Annotated[str, typer.Option(help="Start: ISO 8601 (UTC if naive) or ago: 6h, 2d")],
    until: Annotated[str | None, typer.Option(help="End (default: now)")] = None,
    connector: Annotated[
        str | None, typer.Option(help="Replay to this connector's rule only")
    ] = None,
    bus: Annotated[
        str | None, typer.Option(help=f"Event bus (else ${EVENT_BUS_ENV}, else certplane)")
    ] = None,
    archive: Annotated[
        str | None, typer.Option(help="Archive name (default: the bus's only archive)")
    ] = None,
    wait: Annotated[int, typer.Option(min=0, help="Seconds to wait for the replay")] = 600,
    region: Region = None,
    profile: Profile = None,
    as_json: AsJson = False,
) -> None:
    """Re-deliver archived certplane events of a time window (EventBridge StartReplay)."""
    start = _run(lambda: ops.parse_time(since))
    end = _run(lambda: ops.parse_time(until)) if until else None
    events = session(region, profile).client("events")
    bus_name = bus or os.environ.get(EVENT_BUS_ENV) or EVENT_BUS_DEFAULT
    result = _run(
        lambda: ops.replay(
            events, bus_name, start, end, connector=connector, archive=archive, wait_seconds=wait
        )
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "replay": result.name,
                    "archive": result.archive,
                    "since": result.since.isoformat(),
                    "until": result.until.isoformat(),
                    "filter_arns": result.filter_arns,
                    "state": result.state,
                    "reason": result.reason,
                }
            )
        )
    else:
        table = Table(show_header=False, box=None)
        table.add_row("replay", result.name)
        table.add_row("archive", result.archive)
        table.add_row("window", f"{result.since.isoformat()} .. {result.until.isoformat()}")
        table.add_row("to", ", ".join(result.filter_arns) or f"every rule on bus {bus_name}")
        table.add_row("state", result.state + (f" ({result.reason})" if result.reason else ""))
        if result.last_replayed:
            table.add_row("last replayed event", str(result.last_replayed))
        console.print(table)
    if result.state not in ops.REPLAY_DONE:
        errors.print(f"replay {result.name} still {result.state}; it continues in AWS")
        raise typer.Exit(1)
    if result.state != "COMPLETED":
        raise typer.Exit(1)
