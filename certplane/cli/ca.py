"""`certplane ca`: create a CA whose keys never leave AWS KMS, for a deployment's first CA.

The local software CA refuses to create keys inside Lambda, so a deployment needs a CA held
elsewhere; KMS is the one an account always has. `create-kms` makes the root and issuing keys,
signs both CA certificates through KMS, writes the chain and prints the `[[cas]]` entry (with
the chain inline, since the deployed functions see only the configuration file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError

from certbridge.engines.kms import KEY_SPECS, create_kms_hierarchy
from certbridge.interface import PermanentEngineError
from certplane.cli.options import Profile, Region, aws_session, errors, fail

app = typer.Typer(no_args_is_help=True, help=__doc__)


session = aws_session  # tests replace this


def ca_entry(ca_id: str, key_id: str, chain_pem: str, region: str | None) -> str:
    """The TOML `[[cas]]` entry for a KMS engine (JSON strings are valid TOML basic strings)."""
    lines = ["[[cas]]", f"id = {json.dumps(ca_id)}", 'engine = "kms"', "", "[cas.options]"]
    lines.append(f"key_id = {json.dumps(key_id)}")
    if region:
        lines.append(f"region = {json.dumps(region)}")
    lines.append(f'chain_pem = """\n{chain_pem}"""')
    return "\n".join(lines) + "\n"


@app.command("create-kms")
def create_kms(
    ca_id: Annotated[str, typer.Option("--id", help="CA id in the configuration")],
    name: Annotated[str, typer.Option(help="CA common names: '<name> Root CA' / 'Issuing CA'")],
    alias_prefix: Annotated[str, typer.Option(help="KMS aliases <prefix>-root, <prefix>-issuing")],
    key_spec: Annotated[str, typer.Option(help=f"One of {', '.join(sorted(KEY_SPECS))}")] = (
        "ECC_NIST_P256"
    ),
    organization: Annotated[str, typer.Option(help="O= of both CA subjects")] = "certplane",
    chain_out: Annotated[Path | None, typer.Option(help="Also write the chain PEM here")] = None,
    region: Region = None,
    profile: Profile = None,
) -> None:
    """Create root and issuing CA keys in KMS, sign both certificates, print the [[cas]] entry."""
    aws = session(region, profile)
    try:
        hierarchy = create_kms_hierarchy(
            aws.client("kms"),
            key_spec=key_spec,
            name=name,
            organization=organization,
            alias_prefix=alias_prefix,
            tags={"certplane:ca": ca_id},
        )
    except PermanentEngineError as error:
        raise fail(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise fail(f"AWS: {error}") from None
    if chain_out:
        chain_out.write_text(hierarchy.chain_pem)
    errors.print(
        f"root key {hierarchy.root_key_id} (disable it now; needed only for a new issuing CA), "
        f"issuing key {hierarchy.issuing_key_id}",
        highlight=False,
    )
    typer.echo(ca_entry(ca_id, f"alias/{alias_prefix}-issuing", hierarchy.chain_pem, region))
