"""`certplane simulate`: a fleet of devices enrolling, renewing and revoking against a server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from certplane.simulate.fleet import PROTOCOL_CHOICES
from certplane.simulate.runner import FleetOptions, Simulation, verify_inventory
from certplane.simulate.target import Target, TargetError

console = Console()
errors = Console(stderr=True)


def _summary_table(summary: dict[str, Any], inventory: dict[str, int] | None) -> Table:
    table = Table(title="certplane simulate", show_header=False)
    latency = summary["latency_ms"]
    rows = [
        ("devices", summary["devices"]),
        ("requests", summary["requests"]),
        ("certificates", summary["certificates"]),
        ("errors", summary["errors"]),
        ("certificates/s", summary["certs_per_s"]),
        ("requests/s", summary["requests_per_s"]),
        ("latency p50 / p90 / p99 ms", f"{latency['p50']} / {latency['p90']} / {latency['p99']}"),
        ("duration s", summary["duration_s"]),
    ]
    for name, operation in summary["operations"].items():
        ms = operation["latency_ms"]
        rows.append(
            (
                f"  {name}",
                f"{operation['requests']} requests, {operation['errors']} errors, "
                f"p50 {ms['p50']} ms, p99 {ms['p99']} ms",
            )
        )
    for kind, count in summary["errors_by_kind"].items():
        rows.append((f"  error {kind}", count))
    if inventory is not None:
        rows.append(
            (
                "inventory",
                f"{inventory['checked'] - inventory['missing']}/{inventory['checked']} found, "
                f"{inventory['wrong_status']} wrong status, "
                f"{inventory['wrong_certificate']} wrong certificate",
            )
        )
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def simulate(
    devices: Annotated[int, typer.Option(min=1, help="How many devices (at most)")] = 100,
    rate: Annotated[
        float, typer.Option(min=0, help="Devices started per second (0: as fast as possible)")
    ] = 10.0,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Stop starting devices after this many seconds")
    ] = None,
    protocol: Annotated[str, typer.Option(help="est, certifier or mixed (alternating)")] = "mixed",
    renew_fraction: Annotated[
        float, typer.Option(min=0, max=1, help="Share of devices that renew after enrolling")
    ] = 0.0,
    revoke_fraction: Annotated[
        float, typer.Option(min=0, max=1, help="Share of devices that revoke at the end")
    ] = 0.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Devices in flight at most")] = 16,
    profile: Annotated[
        str | None, typer.Option(help="Profile (EST label, Certifier profileName)")
    ] = None,
    est_auth: Annotated[
        str, typer.Option(help="basic (est-credentials) or seed (TLS client certificate)")
    ] = "basic",
    verify: Annotated[
        bool,
        typer.Option(
            "--verify-inventory", help="Afterwards, find every certificate in the inventory"
        ),
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Server URL (else CERTPLANE_URL, dev home)")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Management token (revoke EST, verify)")] = None,
    home: Annotated[Path | None, typer.Option(help="Dev home (else CERTPLANE_HOME)")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA file to trust")] = None,
    bootstrap: Annotated[
        Path | None,
        typer.Option(help="Folder with est-credentials, seed.pem, seed.key (else the dev home's)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, no progress bar")] = False,
) -> None:
    """Simulate a device fleet: enroll (EST, Certifier API), renew and revoke, then summarise."""
    if protocol not in PROTOCOL_CHOICES:
        raise typer.BadParameter(
            f"choose one of {', '.join(PROTOCOL_CHOICES)}", param_hint="--protocol"
        )
    if est_auth not in ("basic", "seed"):
        raise typer.BadParameter("choose basic or seed", param_hint="--est-auth")
    options = FleetOptions(
        devices=devices,
        rate=rate,
        duration=duration,
        protocol=protocol,
        renew_fraction=renew_fraction,
        revoke_fraction=revoke_fraction,
        concurrency=concurrency,
        profile=profile,
        est_auth=est_auth,
    )
    try:
        target = Target.resolve(
            url=url, token=token, home=home, ca_file=ca_file, bootstrap=bootstrap
        )
        simulation = Simulation(target, options)
        if verify and simulation.management is None:
            raise TargetError("--verify-inventory needs a management token: pass --token")
        if as_json:
            results = simulation.run()
        else:
            with Progress(
                TextColumn("devices"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[certs]} certificates, {task.fields[errors]} errors"),
                TimeElapsedColumn(),
                console=errors,
            ) as bar:
                expected = devices
                if duration and rate > 0:
                    expected = min(devices, math.ceil(rate * duration))
                task = bar.add_task("fleet", total=expected, certs=0, errors=0)

                def advance(progress: Any) -> None:
                    bar.update(
                        task,
                        completed=progress.devices_finished,
                        certs=len(progress.acknowledged),
                        errors=progress.errors,
                    )

                results = simulation.run(advance)
                bar.update(task, total=results.devices_started)
        inventory = verify_inventory(simulation) if verify else None
    except TargetError as error:
        errors.print(f"[red]error[/red]: {error}", highlight=False)
        raise typer.Exit(2) from None
    summary = results.summary()
    failed = summary["errors"] > 0 or (
        inventory is not None
        and (inventory["missing"] or inventory["wrong_status"] or inventory["wrong_certificate"])
    )
    if as_json:
        document = {**summary, "inventory": inventory, "acknowledged": results.certificate_list()}
        typer.echo(json.dumps(document))
    else:
        console.print(_summary_table(summary, inventory))
    if failed:
        raise typer.Exit(1)
