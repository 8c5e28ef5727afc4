"""`certplane`: run the dev server, and issue, list, show, renew and revoke certificates."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from certplane.cli.api import Api, refused, show
from certplane.cli.ca import app as ca_app
from certplane.cli.client import ApiError
from certplane.cli.credentials import app as credentials_app
from certplane.cli.events import app as events_app
from certplane.cli.options import AsJson, CaFile, Home, Token, Url, errors
from certplane.cli.simulate import simulate
from certplane.cli.workflows import approvals_app, bulk_app, sweep
from certplane.dev.home import default_home
from certplane.model import REVOCATION_REASONS

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
cert_app = typer.Typer(no_args_is_help=True, help="Certificates in the inventory.")
app.add_typer(cert_app, name="cert")
app.add_typer(events_app, name="events", help="Connector DLQs and event replay (AWS).")
app.add_typer(bulk_app, name="bulk")
app.add_typer(credentials_app, name="credentials", help="Seed credentials in AWS.")
app.add_typer(ca_app, name="ca", help="Create CAs held in AWS KMS.")
app.add_typer(approvals_app, name="approvals")
app.command("sweep")(sweep)
app.command("simulate")(simulate)
console = Console()


def _write_pem(view: dict[str, Any], out: Path) -> None:
    out.write_text((view.get("certificate_pem") or "") + (view.get("chain_pem") or ""))


def _deliver(view: dict[str, Any], out: Path | None, as_json: bool) -> None:
    if out:
        _write_pem(view, out)
    if as_json:
        typer.echo(json.dumps(view))
    elif out:
        errors.print(f"wrote {out}")
        show(view, False)
    else:
        typer.echo((view.get("certificate_pem") or "") + (view.get("chain_pem") or ""), nl=False)


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port (0 picks a free one)")] = 8443,
    status_port: Annotated[
        int, typer.Option(help="Plain-HTTP status port: CRLs, CA certificates, OCSP (0: free)")
    ] = 8080,
    home: Home = None,
    config: Annotated[Path | None, typer.Option(help="Configuration TOML")] = None,
    verbose: Annotated[bool, typer.Option(help="Log every request")] = False,
) -> None:
    """Run the whole control plane locally on an embedded AWS (moto)."""
    from certplane.dev.server import DevServer  # moto is heavy: import only for `dev`

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    server = DevServer(
        home or default_home(),
        host=host,
        port=port,
        status_port=status_port,
        config=config,
        announce=lambda text: console.print(text, soft_wrap=True, highlight=False),
    )
    server.start()
    server.serve_forever()


@cert_app.command("issue")
def cert_issue(
    csr: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="PKCS#10 request (PEM)")],
    profile: Annotated[str, typer.Option(help="Certificate profile")],
    out: Annotated[
        Path | None, typer.Option(help="Write the certificate and its chain here")
    ] = None,
    validity_days: Annotated[int | None, typer.Option(help="Requested validity")] = None,
    device_id: Annotated[str | None, typer.Option(help="Device id (default: subject CN)")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner recorded in the inventory")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Retry-safe request key")] = None,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Issue a certificate for a CSR."""
    tags = dict(item.split("=", 1) for item in (tag or []) if "=" in item)
    body = {
        "csr": csr.read_text(),
        "profile": profile,
        "validity_days": validity_days,
        "device_id": device_id,
        "owner": owner,
        "tags": tags,
    }
    view = Api(url, token, home, ca_file)(
        "POST",
        "/v1/certificates",
        {k: v for k, v in body.items() if v is not None},
        idempotency_key=idempotency_key,
    )
    _deliver(view, out, as_json)


@cert_app.command("list")
def cert_list(
    status: Annotated[str | None, typer.Option(help="ISSUED, REVOKED, …")] = None,
    profile: Annotated[str | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    expiring_before: Annotated[datetime.datetime | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(help="Page size")] = 50,
    all_pages: Annotated[bool, typer.Option("--all", help="Fetch every page")] = False,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List certificates, newest first."""
    try:
        client = Api(url, token, home, ca_file).client
        items: list[dict[str, Any]] = []
        cursor = None
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=errors, transient=True
        ) as progress:
            task = progress.add_task("fetching certificates", total=None)
            while True:
                page = client.request(
                    "GET",
                    "/v1/certificates",
                    status=status,
                    profile=profile,
                    device=device,
                    expiring_before=expiring_before.isoformat() if expiring_before else None,
                    limit=limit,
                    cursor=cursor,
                )
                items.extend(page["items"])
                cursor = page.get("next_cursor")
                progress.update(task, description=f"fetched {len(items)} certificates")
                if not cursor or not all_pages:
                    break
    except ApiError as error:
        raise refused(error) from None
    if as_json:
        typer.echo(json.dumps({"items": items, "next_cursor": cursor}))
        return
    table = Table("serial", "status", "profile", "device", "not after", "certificate id")
    for item in items:
        table.add_row(
            item["serial"],
            item["status"],
            item["profile"],
            item["device_id"],
            item["not_after"] or "",
            item["certificate_id"] or "",
        )
    console.print(table)
    if cursor:
        errors.print("more certificates: use --all")


@cert_app.command("show")
def certshow(
    reference: Annotated[str, typer.Argument(metavar="ID", help="Certificate id or serial")],
    pem: Annotated[bool, typer.Option(help="Print the certificate PEM")] = False,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Show one certificate."""
    view = Api(url, token, home, ca_file)("GET", f"/v1/certificates/{reference}")
    if pem:
        typer.echo(view.get("certificate_pem") or "", nl=False)
    else:
        show(view, as_json)


@cert_app.command("revoke")
def cert_revoke(
    reference: Annotated[str, typer.Argument(metavar="ID", help="Certificate id or serial")],
    reason: Annotated[
        str, typer.Option(help=f"RFC 5280 reason: {', '.join(sorted(REVOCATION_REASONS))}")
    ] = "unspecified",
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Revoke a certificate."""
    view = Api(url, token, home, ca_file)(
        "POST",
        f"/v1/certificates/{reference}/revoke",
        {"reason": reason},
    )
    show(view, as_json)


@cert_app.command("renew")
def cert_renew(
    reference: Annotated[str, typer.Argument(metavar="ID", help="Certificate id or serial")],
    csr: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="New key's CSR (else same key)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the certificate and its chain here")
    ] = None,
    validity_days: Annotated[int | None, typer.Option()] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """Renew a certificate (it becomes SUPERSEDED by the new one)."""
    body: dict[str, Any] = {}
    if csr:
        body["csr"] = csr.read_text()
    if validity_days:
        body["validity_days"] = validity_days
    view = Api(url, token, home, ca_file)(
        "POST",
        f"/v1/certificates/{reference}/renew",
        body,
        idempotency_key=idempotency_key,
    )
    _deliver(view, out, as_json)


@app.command("profiles")
def profiles(
    url: Url = None,
    token: Token = None,
    home: Home = None,
    ca_file: CaFile = None,
    as_json: AsJson = False,
) -> None:
    """List the certificate profiles this tenant may use."""
    items = Api(url, token, home, ca_file)("GET", "/v1/profiles")["items"]
    if as_json:
        typer.echo(json.dumps(items))
        return
    table = Table("name", "key algorithms", "EKUs", "max days", "route", "description")
    for p in items:
        table.add_row(
            p["name"],
            ", ".join(p["key_algorithms"]),
            ", ".join(p["extended_key_usages"]),
            str(p["max_validity_days"]),
            " → ".join(p["route"]),
            p["description"],
        )
    console.print(table)
