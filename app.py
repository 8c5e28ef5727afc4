"""CDK entry point: `cdk synth` / `cdk deploy` run this, and the synth tests call `build_app`.

Synthesizes without AWS credentials: stacks are environment-agnostic unless an account and
region are given (context `account`/`region`, or CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION).

The configuration is the TOML file `certplane dev --config` reads: `cdk synth -c config=FILE`
(the packaged defaults without it). It decides the CA engines' IAM grants and is shipped to
every function (CERTPLANE_CONFIG).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from cdk import nag_acknowledgements
from cdk.deployed_config import DeployedConfig
from certplane.resources import EST, STATUS_BUCKET
from stacks.api_stack import ManagementApiStack
from stacks.certbridge_stack import CertBridgeStack
from stacks.enrollment_stack import EnrollmentStack
from stacks.events_stack import EventsStack
from stacks.integrations_stack import IntegrationsStack
from stacks.inventory_stack import InventoryStack
from stacks.monitoring_stack import MonitoringStack
from stacks.status_stack import StatusStack
from stacks.workflows_stack import WorkflowsStack

ROOT = Path(__file__).resolve().parent


def cdk_json_context() -> dict[str, Any]:
    """The feature flags in cdk.json, so a synth outside the CDK CLI (tests) sees them too."""
    return json.loads((ROOT / "cdk.json").read_text()).get("context", {})


def create_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> cdk.App:
    """An App primed with cdk.json's context (then `context`); the CLI's `-c` still wins.

    Without an outdir the templates go where the CLI asks (CDK_OUTDIR) or to ./cdk.out, so
    `python app.py` alone leaves them where `cdk deploy --app cdk.out` would look.
    """
    outdir = outdir or os.environ.get("CDK_OUTDIR") or str(ROOT / "cdk.out")
    return cdk.App(outdir=outdir, context={**cdk_json_context(), **(context or {})})


def _environment(app: cdk.App) -> cdk.Environment:
    return cdk.Environment(
        account=app.node.try_get_context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION"),
    )


def deployed_config(app: cdk.App) -> DeployedConfig:
    """The configuration named by context `config` (relative to the working directory)."""
    return DeployedConfig.load(app.node.try_get_context("config") or None)


def build_app(app: cdk.App) -> dict[str, cdk.Stack]:
    """Add every certplane stack to `app`; stacks are wired by passing constructs."""
    env = _environment(app)
    config = deployed_config(app)
    inventory = InventoryStack(app, "CertplaneInventory", env=env)
    events = EventsStack(app, "CertplaneEvents", env=env)
    wiring = {"tables": inventory.tables, "bus": events.bus, "config": config, "env": env}
    api = ManagementApiStack(app, "CertplaneManagementApi", **wiring)
    enrollment = EnrollmentStack(app, "CertplaneEnrollment", **wiring)
    status = StatusStack(app, "CertplaneStatus", **wiring)
    workflows = WorkflowsStack(
        app,
        "CertplaneWorkflows",
        buckets={STATUS_BUCKET.logical_id: status.status_bucket.bucket},
        **wiring,
    )
    workflows.grant_control(api.handler.function)
    workflows.grant_approval_requests(enrollment.handlers[EST.logical_id].function)
    stacks: dict[str, cdk.Stack] = {
        "inventory": inventory,
        "events": events,
        "api": api,
        "enrollment": enrollment,
        "status": status,
        "workflows": workflows,
    }
    if config.settings.connectors:  # no connectors configured: no integrations stack at all
        stacks["integrations"] = IntegrationsStack(
            app, "CertplaneIntegrations", bus=events.bus, config=config, env=env
        )
    # After every stack with signing functions: its role trusts exactly their roles.
    stacks["certbridge"] = CertBridgeStack(app, "CertplaneCertBridge", config=config, env=env)
    # Last: it watches every stack above (and depends on them, never the reverse).
    stacks["monitoring"] = MonitoringStack(
        app,
        "CertplaneMonitoring",
        watched=list(stacks.values()),
        bus=events.bus,
        config=config,
        env=env,
    )
    return stacks


if __name__ == "__main__":
    app = create_app()
    build_app(app)
    if nag_acknowledgements.nag_enabled(app):  # cdk-nag AwsSolutions; `-c nag=false` skips
        nag_acknowledgements.apply(app)
    app.synth()
