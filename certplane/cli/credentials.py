"""`certplane credentials`: seed the deployed Principals table (boto3, not the API).

A fresh deployment has no credential at all: nothing can call the management API in token
mode and no device can enroll. These commands write the first ones straight into the table,
with the operator's AWS credentials, the way `certplane dev` seeds its embedded table: API
tokens and EST passwords are stored only hashed, and a token is shown exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from pynamodb.exceptions import PynamoDBException
from rich.console import Console

from certplane.auth.credentials import PRINCIPALS_TABLE_ENV, Credential, CredentialStore
from certplane.cli.options import Profile, Region, aws_session
from certplane.cli.options import fail as _fail
from certplane.resources import PRINCIPALS

app = typer.Typer(no_args_is_help=True, help=__doc__)
console = Console()

INVENTORY_STACK = "CertplaneInventory"
# The inventory stack exports each table's CloudFormation-generated name as <logical id>TableName.
TABLE_OUTPUT = f"{PRINCIPALS.logical_id}TableName"

Tenant = Annotated[str, typer.Option(help="Tenant the credential belongs to")]
Table = Annotated[
    str | None,
    typer.Option(
        envvar=PRINCIPALS_TABLE_ENV,
        help=f"Principals table name (else the {TABLE_OUTPUT} output of --stack)",
    ),
]
Stack = Annotated[str, typer.Option(help="Inventory stack whose output names the table")]


session = aws_session  # tests replace this


def _table_from_stack(aws: boto3.Session, stack: str) -> str:
    described = aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    for output in described.get("Outputs", []):
        if output["OutputKey"] == TABLE_OUTPUT:
            return output["OutputValue"]
    raise _fail(f"stack {stack} has no output {TABLE_OUTPUT}; pass --table")


def _store(table: str | None, stack: str, region: str | None, profile: str | None) -> None:
    """Point the Credential model at the deployed table, in the operator's session's region."""
    aws = session(region, profile)
    try:
        name = table or _table_from_stack(aws, stack)
    except (ClientError, BotoCoreError) as error:
        raise _fail(f"AWS: {error}") from None
    Credential.Meta.table_name = name
    Credential.Meta.region = aws.region_name
    Credential._connection = None  # pynamodb caches one connection per model class


def _write(action: Callable[[], object]) -> None:
    try:
        action()
    except (ClientError, BotoCoreError, PynamoDBException) as error:
        raise _fail(f"AWS: {error}") from None


@app.command("token")
def token(
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="Who holds the token (shown in events as actor)")],
    role: Annotated[list[str] | None, typer.Option(help="Role (repeat); default admin")] = None,
    table: Table = None,
    stack: Stack = INVENTORY_STACK,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Create a management API bearer token; it is printed once and stored only hashed."""
    _store(table, stack, region, profile)
    store = CredentialStore()
    created: list[str] = []
    _write(lambda: created.append(store.create_token(tenant, name, tuple(role or ["admin"]))))
    typer.echo(created[0])


@app.command("est-user")
def est_user(
    tenant: Tenant,
    username: Annotated[str, typer.Option(help="EST HTTP Basic user name")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    table: Table = None,
    stack: Stack = INVENTORY_STACK,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Create or reset an EST user (the password is stored as an scrypt hash)."""
    if len(password) < 12:
        raise _fail("the password must have at least 12 characters")
    _store(table, stack, region, profile)
    _write(lambda: CredentialStore().set_password(tenant, username, password))
    console.print(f"EST user {username!r} of tenant {tenant!r} saved")


@app.command("bootstrap-ca")
def bootstrap_ca(
    tenant: Tenant,
    certificate: Annotated[Path, typer.Argument(help="PEM of the factory (bootstrap) CA")],
    table: Table = None,
    stack: Stack = INVENTORY_STACK,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Trust a bootstrap CA: devices holding seeds it issued may enroll into this tenant."""
    try:
        ca = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError) as error:
        raise _fail(f"{certificate}: not a readable PEM certificate ({error})") from None
    _store(table, stack, region, profile)
    _write(lambda: CredentialStore().trust_bootstrap_ca(tenant, ca))
    console.print(f"tenant {tenant!r} now trusts {ca.subject.rfc4514_string()}")
