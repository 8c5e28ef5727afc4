"""Deploy what `build_app` synthesizes into an embedded moto account, as `cdk deploy` would.

The steps are the CDK CLI's: publish each stack's file assets (directories zipped) to the
bootstrap bucket under their hashed keys, then create the stacks in dependency order. The
default synthesizer's templates ask for the bootstrap version from SSM
(/cdk-bootstrap/hnb659fds/version), so that parameter is put first, as `cdk bootstrap` does.

moto's CloudFormation differs from AWS; the template edits here are narrow and reported in
`Deployment.adapted` (moto_service.py fixes the rest inside moto, where AWS's documented
behaviour is clear):
- resource types it has no model for are skipped (not created) with a warning; `deploy`
  records them in `Deployment.skipped` and the smoke test accepts only MOTO_SKIPPED_TYPES,
  edge features nothing in the smoke test runs through;
- it rejects a whole stack when something reads an attribute of a skipped resource, so such
  readers (a dashboard reading alarm ARNs, outputs) are dropped — never CORE_TYPES
  (`drop_readers`);
- its event archives need a short explicit name and a string pattern (`adapt_archives`);
- a rule delivering to a skipped resource (the evidence stream) would fail every PutEvents on
  the bus, so it goes too (`drop_rules_feeding`).
"""

from __future__ import annotations

import copy
import io
import json
import os
import select
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests

from app import build_app, create_app

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "21"
SERVICE = Path(__file__).with_name("moto_service.py")
STARTUP_SECONDS = 60  # hang guards for a busy CI machine, not performance checks
STACK_SECONDS = 120
# Resource types moto's CloudFormation has no model for (it skips them with a warning), and why
# the smoke test can do without them. Any other type moto cannot create fails the test.
MOTO_SKIPPED_TYPES = {
    "AWS::ApiGateway::Stage": "the test invokes the API functions with proxy events",
    "AWS::ApiGateway::Account": "account-wide API Gateway logging role setting",
    "AWS::ApiGateway::Authorizer": "gateway authorizers (the smoke test uses token auth)",
    "AWS::ApiGateway::GatewayResponse": "gateway-made error bodies (no gateway in the test)",
    "AWS::ApiGateway::RequestValidator": "gateway-side validation (no gateway in the test)",
    "AWS::ApiGateway::Model": "gateway-side validation (no gateway in the test)",
    "AWS::ApiGateway::DomainName": "custom domain with mutual TLS",
    "AWS::ApiGateway::BasePathMapping": "custom domain with mutual TLS",
    "AWS::Cognito::UserPool": "JWT authorizer's user pool (the smoke test uses token auth)",
    "AWS::Cognito::UserPoolClient": "JWT authorizer's user pool (the smoke test uses token auth)",
    "AWS::KinesisFirehose::DeliveryStream": "evidence stream (events to the Object-Locked bucket)",
    "AWS::S3::BucketPolicy": "TLS-only and CloudFront read statements on the status bucket",
    "AWS::SQS::QueuePolicy": "lets EventBridge and Scheduler send to dead-letter queues",
    "AWS::SNS::TopicPolicy": "lets CloudWatch publish alarms",
    "AWS::Lambda::EventInvokeConfig": "retry and dead-letter settings of asynchronous invokes",
    "AWS::Lambda::Alias": "aliases (the test invokes $LATEST)",
    "AWS::CloudFront::Distribution": "the CDN in front of the status bucket and OCSP",
    "AWS::CloudFront::CachePolicy": "the CDN in front of the status bucket and OCSP",
    "AWS::CloudFront::OriginAccessControl": "the CDN in front of the status bucket and OCSP",
    "AWS::Scheduler::Schedule": "schedules never fire in moto; the test starts the sweep itself",
    "AWS::CloudWatch::Alarm": "alarms on metrics moto does not produce",
    "AWS::CloudWatch::CompositeAlarm": "alarms on metrics moto does not produce",
    "AWS::Logs::MetricFilter": "metrics from log lines",
    # Not created because it reads attributes of skipped resources (`drop_readers`).
    "AWS::CloudWatch::Dashboard": "its alarm widgets read the ARNs of the (skipped) alarms",
}
# Never dropped: the smoke test's claims rest on these.
CORE_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Events::EventBus",
        "AWS::Events::Rule",
        "AWS::StepFunctions::StateMachine",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
    }
)
# Step Functions really executes; Lambda runs without docker (moto_service.py runs the handlers).
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
# All the moto process and stand-in processes take from the test's environment.
INHERITED = ("PATH", "HOME", "LANG", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")
# A fake account for every client: credentials from the developer's environment never apply.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def moto_unsupported(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> type of the resources moto's CloudFormation has no model for."""
    from moto.cloudformation.parsing import get_model_map  # heavy: only when deploying

    models = get_model_map()
    return {
        logical_id: resource["Type"]
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] not in models
    }


def drop_readers(template: dict[str, Any], missing: set[str]) -> list[str]:
    """Remove what reads an attribute (Fn::GetAtt) of a resource moto will not create: moto
    rejects the whole stack on such a read. Resources go transitively (a dashboard reading
    alarm ARNs), outputs too; a CORE_TYPES resource never goes: that raises instead, since the
    smoke test would then deploy without something it claims to check. Returns what went."""
    resources = template.get("Resources", {})
    missing = set(missing)
    dropped: list[str] = []
    changed = True
    while changed:
        changed = False
        for logical_id, resource in list(resources.items()):
            if logical_id in missing or not _attribute_reads(resource) & missing:
                continue
            if resource["Type"] in CORE_TYPES:
                raise AssertionError(f"{logical_id} ({resource['Type']}) reads {sorted(missing)}")
            del resources[logical_id]
            missing.add(logical_id)
            dropped.append(f"{logical_id} ({resource['Type']})")
            changed = True
    for name, output in list(template.get("Outputs", {}).items()):
        if _attribute_reads(output) & missing:
            del template["Outputs"][name]
            dropped.append(f"output {name}")
    return dropped


def drop_rules_feeding(template: dict[str, Any], missing: set[str]) -> list[str]:
    """Remove event rules that depend on a resource moto will not create (their target): moto
    would fail every PutEvents on the bus delivering to it. Returns what went."""
    resources = template.get("Resources", {})
    dropped = []
    for logical_id, resource in list(resources.items()):
        depends = resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        if resource["Type"] == "AWS::Events::Rule" and set(depends) & missing:
            del resources[logical_id]
            dropped.append(f"{logical_id} ({resource['Type']})")
    return dropped


def _attribute_reads(node: Any) -> set[str]:
    """Logical ids whose attributes a template fragment reads with Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            found |= _attribute_reads(value)
    elif isinstance(node, list):
        for item in node:
            found |= _attribute_reads(item)
    return found


def adapt_archives(template: dict[str, Any], stack_name: str) -> list[str]:
    """Two moto gaps in AWS::Events::Archive, bridged without changing what the archive keeps.

    moto names an unnamed archive `<stack>-<logical id>-<suffix>`, longer than the
    48-character limit its own EventBridge then enforces (AWS generates a short name), and it
    only parses an EventPattern given as a JSON string (CloudFormation also takes an object).
    """
    edits = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::Events::Archive":
            continue
        properties = resource.setdefault("Properties", {})
        if "ArchiveName" not in properties:
            properties["ArchiveName"] = f"{stack_name}-{logical_id}"[:48]
            edits.append(f"{logical_id}: ArchiveName set")
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
            edits.append(f"{logical_id}: EventPattern as a JSON string")
    return edits


def service_env() -> dict[str, str]:
    """The moto process's environment: the basics and fake credentials, nothing else of the
    test's (no AWS profile, no variables other tests left behind)."""
    return {**{k: os.environ[k] for k in INHERITED if k in os.environ}, **FAKE_AWS_ENV}


class MotoAccount:
    """The moto server process (tests/deploy/moto_service.py) and clients bound to it."""

    def __init__(self, workdir: Path, overlay: Mapping[str, str]) -> None:
        self.workdir = workdir
        env = service_env()
        env["DEPLOY_SMOKE_OVERLAY"] = json.dumps(dict(overlay))
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, str(SERVICE), str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(workdir / "moto.log").open("ab"),
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        # "PORT <n>"; EOF if it failed to start; nothing at all if it hangs.
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_SECONDS)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"moto service did not start: {(workdir / 'moto.log').read_text()}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://localhost:{self.port}"
        self.session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=REGION,
        )
        response = requests.post(
            f"{self.endpoint}/moto-api/config",
            json={
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
            },
            timeout=10,
        )
        response.raise_for_status()

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    def function_environment(self, function_name: str) -> dict[str, str]:
        """What a process acting in a deployed function's place needs: its deployed
        variables, the fake account and this endpoint."""
        config = self.client("lambda").get_function_configuration(FunctionName=function_name)
        return {
            **{k: os.environ[k] for k in INHERITED if k in os.environ},
            **FAKE_AWS_ENV,
            **config.get("Environment", {}).get("Variables", {}),
            "AWS_ENDPOINT_URL": self.endpoint,
            "POWERTOOLS_TRACE_DISABLED": "1",
        }

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's log, minus request lines (for failure messages)."""
        log = (self.workdir / "moto.log").read_text(errors="replace").splitlines()
        return "\n".join([line for line in log if not line.startswith("127.0.0.1")][-lines:])

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class SynthesizedApp:
    outdir: Path
    stacks: dict[str, str]  # build_app key -> stack name
    order: list[str]  # stack names, dependencies first
    templates: dict[str, Path]  # stack name -> template file
    asset_manifests: dict[str, Path]


def synthesize(outdir: Path, context: Mapping[str, Any] | None = None) -> SynthesizedApp:
    """Synthesize `build_app` with the default configuration (Python synth, no CLI)."""
    app = create_app(str(outdir), dict(context or {}))
    stacks = build_app(app)
    assembly = app.synth()
    order: list[str] = []

    def visit(stack: Any) -> None:
        for dependency in stack.dependencies:
            visit(dependency)
        if stack.stack_name not in order:
            order.append(stack.stack_name)

    for stack in stacks.values():
        visit(stack)
    templates = {s.stack_name: outdir / s.template_file for s in stacks.values()}
    manifests = {
        name: outdir / f"{name}.assets.json"
        for name in order
        if (outdir / f"{name}.assets.json").exists()
    }
    assert assembly.directory == str(outdir)
    return SynthesizedApp(
        outdir, {k: s.stack_name for k, s in stacks.items()}, order, templates, manifests
    )


def _substitute(text: str) -> str:
    return (
        text.replace("${AWS::AccountId}", ACCOUNT)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::Partition}", "aws")
    )


def publish_assets(account: MotoAccount, synth: SynthesizedApp) -> list[str]:
    """Upload every file asset of every stack as the CDK CLI does; returns the object keys."""
    s3 = account.client("s3")
    buckets: set[str] = set()
    keys: list[str] = []
    for manifest_path in synth.asset_manifests.values():
        manifest = json.loads(manifest_path.read_text())
        for asset in manifest.get("files", {}).values():
            source = synth.outdir / asset["source"]["path"]
            body = _zip_folder(source) if asset["source"].get("packaging") == "zip" else None
            for destination in asset["destinations"].values():
                bucket = _substitute(destination["bucketName"])
                if bucket not in buckets:
                    s3.create_bucket(Bucket=bucket)
                    buckets.add(bucket)
                key = _substitute(destination["objectKey"])
                s3.put_object(Bucket=bucket, Key=key, Body=body or source.read_bytes())
                keys.append(key)
        if manifest.get("dockerImages"):
            raise AssertionError(f"{manifest_path.name} has docker image assets: not supported")
    return keys


def _zip_folder(folder: Path) -> bytes:
    """The folder as the CDK CLI packages it (a zip of its content); fast compression, since
    the dependency layer is tens of MB and only this test reads it back."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    assert buffer.tell(), f"empty asset {folder}"
    return buffer.getvalue()


@dataclass
class Deployment:
    account: MotoAccount
    synth: SynthesizedApp
    skipped: dict[str, dict[str, str]]  # stack name -> logical id -> type moto did not create
    adapted: dict[str, list[str]]  # stack name -> template edits (drop_readers, adapt_archives)
    statuses: dict[str, str]  # stack name -> final status
    resources: dict[str, dict[str, dict[str, str]]]  # stack -> logical id -> summary

    def physical_id(self, stack_key: str, logical_prefix: str, resource_type: str) -> str:
        """The physical id of the one resource of `resource_type` whose logical id starts
        with `logical_prefix` in the stack `build_app` calls `stack_key`."""
        stack = self.synth.stacks[stack_key]
        found = [
            summary["PhysicalResourceId"]
            for logical_id, summary in self.resources[stack].items()
            if logical_id.startswith(logical_prefix) and summary["ResourceType"] == resource_type
        ]
        assert len(found) == 1, f"{stack}: {logical_prefix}* {resource_type}: {found}"
        return found[0]

    def report(self) -> str:
        """Per stack: its status, what moto did not create and what the harness edited."""
        lines = []
        for stack in self.synth.order:
            lines.append(f"{stack}: {self.statuses.get(stack, 'not attempted')}")
            skipped = sorted(set(self.skipped.get(stack, {}).values()))
            if skipped:
                lines.append(f"  not created: {', '.join(skipped)}")
            lines += [f"  edited: {edit}" for edit in self.adapted.get(stack, [])]
        return "\n".join(lines)


def deploy(account: MotoAccount, synth: SynthesizedApp) -> Deployment:
    """Bootstrap, publish and create every stack in dependency order; waits for each."""
    account.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{QUALIFIER}/version", Value=BOOTSTRAP_VERSION, Type="String"
    )
    publish_assets(account, synth)
    cloudformation = account.client("cloudformation")
    skipped: dict[str, dict[str, str]] = {}
    adapted: dict[str, list[str]] = {}
    statuses: dict[str, str] = {}
    resources: dict[str, dict[str, dict[str, str]]] = {}
    for name in synth.order:
        synthesized = json.loads(synth.templates[name].read_text())
        template = copy.deepcopy(synthesized)
        unsupported = moto_unsupported(template)
        feeding = drop_rules_feeding(template, set(unsupported))
        adapted[name] = (
            adapt_archives(template, name)
            + [
                f"dropped {what}: reads a resource moto does not create"
                for what in drop_readers(template, set(unsupported))
            ]
            + [f"dropped {what}: delivers to a resource moto does not create" for what in feeding]
        )
        try:
            cloudformation.create_stack(
                StackName=name,
                TemplateBody=json.dumps(template),
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        except Exception as error:  # moto answers 500 on what it cannot parse: show why
            raise AssertionError(f"create_stack {name}: {error}\n{account.log_tail()}") from error
        statuses[name] = _wait(cloudformation, name)
        if statuses[name] != "CREATE_COMPLETE":
            break
        paginator = cloudformation.get_paginator("list_stack_resources")
        resources[name] = {
            summary["LogicalResourceId"]: summary
            for page in paginator.paginate(StackName=name)
            for summary in page["StackResourceSummaries"]
        }
        skipped[name] = {
            logical_id: resource["Type"]
            for logical_id, resource in synthesized["Resources"].items()
            if logical_id not in resources[name]
            and f"{logical_id} ({resource['Type']})" not in feeding  # reported as edits
        }
    return Deployment(account, synth, skipped, adapted, statuses, resources)


def _wait(cloudformation: Any, name: str) -> str:
    deadline = time.monotonic() + STACK_SECONDS
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            return stack["StackStatus"]
        time.sleep(0.2)
