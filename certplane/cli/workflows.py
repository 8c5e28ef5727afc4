"""`certplane bulk`, `certplane approvals`, `certplane sweep`: drive the workflows via the API."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from certplane.cli.api import Api, show
from certplane.cli.options import AsJson, CaFile, Home, Token, Url, errors
from certplane.model import REVOCATION_REASONS

bulk_app = typer.Typer(no_args_is_help=True, help="Revoke or reissue many certificates at once.")
approvals_app = typer.Typer(no_args_is_help=True, help="Issuance requests awaiting approval.")
console = Console()
POLL_SECONDS = 1.0

Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it has finished")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait at most")]


def _wait_bulk(api: Api, operation: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while operation["status"] == "RUNNING":
        if time.monotonic() > deadline:
            errors.print(f"still running after {timeout:.0f} s: {operation['progress']}")
            raise typer.Exit(2)
        time.sleep(POLL_SECONDS)
        operation = api("GET", f"/v1/bulk/{operation['id']}")
        errors.print(f"progress {operation['progress']}", highlight=False)
    return operation


def _start_bulk(api: Api, body: dict[str, Any], wait: bool, timeout: float, as_json: bool):
    operation = api("POST", "/v1/bulk", {k: v for k, v in body.items() if v not in (None, [])})
    if wait:
        operation = _wait_bulk(api, operation, timeout)
    show(operation, as_json)
    if operation.get("failed"):
        raise typer.Exit(3)


@bulk_app.command("revoke")
def bulk_revoke(
    ca: Annotated[str | None, typer.Option(help="Every certificate of this CA")] = None,
    profile: Annotated[str | None, typer.Option(help="Every certificate of this profile")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Device id, repeatable")] = None,
    reason: Annotated[
        str, typer.Option(help=f"RFC 5280 reason: {', '.join(sorted(REVOCATION_REASONS))}")
    ] = "unspecified",
    wait: Wait = True,
    timeout: Timeout = 3600,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Revoke every live certificate of a CA (compromise), a profile or some devices."""
    body = {"action": "revoke", "ca": ca, "profile": profile, "devices": device, "reason": reason}
    _start_bulk(Api(url, token, home, ca_file), body, wait, timeout, as_json)


@bulk_app.command("reissue")
def bulk_reissue(
    ca: Annotated[str | None, typer.Option(help="Every certificate of this CA")] = None,
    profile: Annotated[str | None, typer.Option(help="Every certificate of this profile")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Device id, repeatable")] = None,
    wait: Wait = True,
    timeout: Timeout = 3600,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Renew each certificate (same key) through its profile as configured now."""
    body = {"action": "reissue", "ca": ca, "profile": profile, "devices": device}
    _start_bulk(Api(url, token, home, ca_file), body, wait, timeout, as_json)


@bulk_app.command("status")
def bulk_status(
    operation_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a bulk operation's progress."""
    show(Api(url, token, home, ca_file)("GET", f"/v1/bulk/{operation_id}"), as_json)


@bulk_app.command("list")
def bulk_list(
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List this tenant's bulk operations, newest first."""
    items = Api(url, token, home, ca_file)("GET", "/v1/bulk")["items"]
    if as_json:
        typer.echo(json.dumps(items))
        return
    table = Table("id", "action", "selector", "status", "progress", "failed", "created")
    for item in items:
        table.add_row(
            item["id"],
            item["action"],
            json.dumps(item["selector"]),
            item["status"],
            item["progress"],
            str(item["failed"]),
            item["created_at"],
        )
    console.print(table)


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str, typer.Option(help="PENDING, ISSUED, FAILED, …")] = "PENDING",
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List issuance requests (pending ones by default)."""
    items = Api(url, token, home, ca_file)("GET", f"/v1/approvals?status={status}")["items"]
    if as_json:
        typer.echo(json.dumps(items))
        return
    table = Table("id", "profile", "device", "requester", "status", "created")
    for item in items:
        table.add_row(
            item["id"],
            item["profile"] or "",
            item["device_id"] or "",
            item["requester"] or "",
            item["status"],
            item["created_at"],
        )
    console.print(table)


def _decide(decision: str, approval_id: str, reason: str | None, api: Api, as_json: bool):
    body = {"decision": decision, **({"reason": reason} if reason else {})}
    show(api("POST", f"/v1/approvals/{approval_id}", body), as_json)


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(help="Recorded with the decision")] = None,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Approve a request: the workflow issues the certificate."""
    _decide("approve", approval_id, reason, Api(url, token, home, ca_file), as_json)


@approvals_app.command("deny")
def approvals_deny(
    approval_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(help="Why (sent in the failure event)")] = None,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Deny a request: it fails with a "Certificate Issuance Failed" event."""
    _decide("deny", approval_id, reason, Api(url, token, home, ca_file), as_json)


def sweep(
    wait: Wait = True,
    timeout: Timeout = 600,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Run the renewal sweep of this tenant now (expiry notices, auto-renewal, expiry)."""
    api = Api(url, token, home, ca_file)
    started = api("POST", "/v1/sweeps")
    view = started
    deadline = time.monotonic() + timeout
    while wait and view["status"] == "RUNNING":
        if time.monotonic() > deadline:
            errors.print(f"sweep {started['name']} still running after {timeout:.0f} s")
            raise typer.Exit(2)
        time.sleep(POLL_SECONDS)
        view = api("GET", f"/v1/sweeps/{started['name']}")
    show(view, as_json)
    if view["status"] not in ("RUNNING", "SUCCEEDED"):
        raise typer.Exit(1)
