"""`make synth`'s command: the pinned CDK CLI synthesizes every stack with no AWS credentials.

Runs the CLI exactly as the Makefile does (npx, cdk.json's app and context, cdk-nag on) into a
temporary output folder, with every AWS credential variable removed and an empty HOME (no
~/.aws), so it also proves that nothing in the synth reaches for an account. About 30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app import build_app, create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CDK_DEFAULT_ACCOUNT",
    "CDK_DEFAULT_REGION",
)


@pytest.fixture(scope="module")
def cli() -> Path:
    if shutil.which("npm") is None:
        pytest.fail("npm is required (Debian package npm; .ci/run installs it)")
    # The Makefile's own rule: `npm ci` from package-lock.json when the CLI is missing.
    subprocess.run(["make", "-s", "node_modules/.bin/cdk"], cwd=REPO_ROOT, check=True)
    assert CDK.is_file()
    return CDK


def test_cli_synth_writes_every_stack_without_credentials(cli: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if name not in CREDENTIALS}
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(cache),  # reuse the dependency layer's pip cache
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
        NPM_CONFIG_UPDATE_NOTIFIER="false",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    outdir = tmp_path / "cdk.out"
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--no-notices", "-q", "--output", str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    expected = {
        stack.stack_name for stack in build_app(create_app(outdir=str(tmp_path / "x"))).values()
    }
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == expected
    for name in expected:
        template = json.loads((outdir / f"{name}.template.json").read_text())
        assert template["Resources"], name
    # cdk-nag ran (context `nag` from cdk.json) and found nothing unacknowledged.
    report = outdir / "validation-report.json"
    if report.is_file():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            assert plugin["violations"] == [], plugin["violations"][:3]
    metadata = "".join(p.read_text() for p in outdir.glob("*.template.json"))
    assert "rules_to_suppress" in metadata  # acknowledgements written: the checks were on
