"""Options and helpers every `certplane` command group shares (one wording, one behaviour)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import boto3
import typer
from rich.console import Console

errors = Console(stderr=True)

# Commands that call the management API (the dev server or a deployment).
Url = Annotated[str | None, typer.Option(help="Server URL (else CERTPLANE_URL, else dev home)")]
Token = Annotated[
    str | None, typer.Option(help="Bearer token (else CERTPLANE_TOKEN, else dev home)")
]
Home = Annotated[Path | None, typer.Option(help="Dev home (else CERTPLANE_HOME, ~/.certplane/dev)")]
CaFile = Annotated[Path | None, typer.Option(help="CA file to trust (else the dev home's root)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]

# Commands that work on the deployed account directly (boto3, the operator's credentials).
Region = Annotated[str | None, typer.Option(help="AWS region (else the profile's / env)")]
Profile = Annotated[str | None, typer.Option(help="AWS profile (else the default chain)")]


def aws_session(region: str | None, profile: str | None) -> boto3.Session:
    """The operator's AWS session."""
    return boto3.Session(region_name=region, profile_name=profile)


def fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned Exit (status 1)."""
    errors.print(f"[red]error[/red]: {message}", highlight=False)
    return typer.Exit(1)
