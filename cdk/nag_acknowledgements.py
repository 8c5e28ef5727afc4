"""Every cdk-nag (AwsSolutions) acknowledgement of certplane, each with the reason it is sound.

`app.py` runs `AwsSolutionsChecks` on the whole app (context `nag`, on by default), so a synth
fails on any finding not acknowledged here. Findings that can be fixed are fixed in the
constructs instead (own-log-group function roles rather than AWSLambdaBasicExecutionRole,
method logging on every stage, ...); what remains is listed below by rule id.

To acknowledge a finding for a new resource, add a rule to the table that matches its
construct (`RULES`) or, for IAM wildcards, the actions or resource pattern (`WILDCARDS`), with
a reason a reviewer can check. `apply(app)` attaches them to the CloudFormation resources,
and the synthesized templates carry them (Metadata `cdk_nag`) as an audit trail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Token, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from cdk.dead_letter_queue import DeadLetterQueue

PACK = "AwsSolutions"


@dataclass(frozen=True)
class Acknowledgement:
    """One rule id (or finding id, `AwsSolutions-IAM5[...]`) and why it is acceptable."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """Acknowledgements for every CloudFormation resource `matches` selects."""

    matches: Callable[[CfnResource], bool]
    acknowledgements: tuple[Acknowledgement, ...]


def _ack(rule: str, reason: str) -> Acknowledgement:
    return Acknowledgement(f"{PACK}-{rule}", reason)


def _resolved(resource: CfnResource, value: Any) -> Any:
    """`value` (a property of `resource`) as in the template: other resources as intrinsics."""
    return Stack.of(resource).resolve(value)


def _path(resource: CfnResource) -> str:
    return resource.node.path


def _in_stack(*names: str) -> Callable[[CfnResource], bool]:
    return lambda resource: Stack.of(resource).stack_name in names


def _unauthenticated_method(resource: CfnResource) -> bool:
    return isinstance(resource, apigateway.CfnMethod) and _resolved(
        resource, resource.authorization_type
    ) in ("NONE", None)


def _authorized_without_cognito(resource: CfnResource) -> bool:
    return isinstance(resource, apigateway.CfnMethod) and _resolved(
        resource, resource.authorization_type
    ) in ("AWS_IAM", "CUSTOM", "JWT")


# Resource-level acknowledgements: (which resources, which findings, why).
RULES: tuple[Rule, ...] = (
    Rule(
        lambda r: isinstance(r, lambda_.CfnFunction) and r.runtime == "python3.12",
        (
            _ack(
                "L1",
                "Pinned to python3.12: the dependencies layer's aarch64 wheels are built for "
                "CPython 3.12 (cdk/dependencies_layer.py PYTHON_VERSION); moving to a newer "
                "runtime is a deliberate change of both together, tested before release.",
            ),
        ),
    ),
    Rule(
        lambda r: isinstance(r, apigateway.CfnRestApi),
        (
            _ack(
                "APIG2",
                "Proxy integrations: every request is validated in the function (Powertools "
                "event handler with pydantic models, DER/PKCS#10 parsing for EST and Certifier) "
                "and answered with a 4xx; a gateway model would duplicate that schema.",
            ),
        ),
    ),
    Rule(
        lambda r: isinstance(r, apigateway.CfnStage),
        (
            _ack(
                "APIG3",
                "WAF is the operator's choice per deployment (cost, managed rule sets); the "
                "stage has access logs, X-Ray and throttling, and every route authenticates "
                "its caller in the function or is public by protocol (OCSP, CRL).",
            ),
        ),
    ),
    Rule(
        lambda r: _unauthenticated_method(r) and _in_stack("CertplaneManagementApi")(r),
        (
            _ack(
                "APIG4",
                "Management API callers present bearer tokens that the function checks against "
                "the Principals table (per tenant, per role) before any route runs.",
            ),
            _ack(
                "COG4",
                "Management API authentication is certplane's own bearer tokens (Principals "
                "table), not a Cognito user pool.",
            ),
        ),
    ),
    Rule(
        lambda r: _unauthenticated_method(r) and _in_stack("CertplaneEnrollment")(r),
        (
            _ack(
                "APIG4",
                "Device enrollment (xPKI Certifier, EST): devices authenticate with bootstrap "
                "certificates, enrollment tokens or client certificates, checked by the "
                "enrollment code; gateway authorizers do not speak these protocols.",
            ),
            _ack(
                "COG4",
                "IoT devices hold certificates and enrollment tokens, not Cognito identities.",
            ),
        ),
    ),
    Rule(
        lambda r: _unauthenticated_method(r) and _in_stack("CertplaneStatus")(r),
        (
            _ack(
                "APIG4",
                "OCSP (RFC 6960) is a public, unauthenticated protocol: relying parties anywhere "
                "must reach it; responses are signed by the CA.",
            ),
            _ack("COG4", "OCSP relying parties are anonymous by protocol (RFC 6960)."),
        ),
    ),
    Rule(
        _authorized_without_cognito,
        (
            _ack(
                "COG4",
                "The method uses an IAM or JWT/OIDC authorizer: tenants bring their own "
                "identity provider, so a Cognito user pool is not required.",
            ),
        ),
    ),
    Rule(
        lambda r: isinstance(r, s3.CfnBucket) and _path(r).startswith("CertplaneStatus/"),
        (
            _ack(
                "S1",
                "The status bucket holds only public CRLs and CA certificates, written by the "
                "CRL publisher (CloudTrail data events, if wanted) and read through CloudFront "
                "with origin access control; server access logs would record only that.",
            ),
        ),
    ),
    Rule(
        lambda r: isinstance(r, s3.CfnBucket) and _path(r).startswith("CertplaneEvents/Evidence/"),
        (
            _ack(
                "S1",
                "The evidence bucket is written only by its Firehose stream and is Object-Locked; "
                "reads by auditors belong in CloudTrail data events, which record the caller, "
                "unlike server access logs.",
            ),
        ),
    ),
    Rule(
        lambda r: (
            isinstance(r, cloudfront.CfnDistribution) and _path(r).startswith("CertplaneStatus/")
        ),
        (
            _ack(
                "CFR1",
                "CRLs and CA certificates must be reachable by relying parties worldwide.",
            ),
            _ack(
                "CFR2",
                "Static, public, CA-signed objects (CRLs, CA certificates): WAF adds nothing "
                "that integrity needs; CloudFront absorbs the load.",
            ),
            _ack(
                "CFR3",
                "Public CRL/CA-certificate downloads; access logs are optional and left to the "
                "operator (they need a log bucket with ACLs enabled).",
            ),
            _ack(
                "CFR4",
                "The distribution uses the default *.cloudfront.net certificate, whose minimum "
                "protocol CloudFront fixes; CRLs are served over plain HTTP anyway (RFC 5280 "
                "CDPs must be http) and are signed.",
            ),
        ),
    ),
    Rule(
        lambda r: (
            isinstance(r, sqs.CfnQueue)
            and r.node.scope is not None
            and isinstance(r.node.scope.node.scope, DeadLetterQueue)
        ),
        (
            _ack(
                "SQS3",
                "The queue is itself a dead-letter queue (cdk/dead_letter_queue.py), e.g. an "
                "EventBridge Scheduler target's DeadLetterConfig, which cdk-nag does not "
                "recognise; CertplaneMonitoring alarms on any message in it.",
            ),
        ),
    ),
)

# AWS managed policies (AwsSolutions-IAM4) acceptable on a role, by policy name.
MANAGED_POLICIES = {
    "AmazonAPIGatewayPushToCloudWatchLogs": "The account-level API Gateway logging role: "
    "AWS's documented managed policy for it; API Gateway, not certplane code, assumes it.",
}

# How ARNs appear in findings: as pseudo parameters in an environment-agnostic synth, as
# literals when the CLI knows the region (feature flag enablePartitionLiterals) or account.
PARTITION = r"(<AWS::Partition>|aws|aws-cn|aws-us-gov)"
REGION = r"(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)"
ACCOUNT = r"(<AWS::AccountId>|\d{12})"

# IAM wildcards (AwsSolutions-IAM5) are acknowledged finding by finding: a finding is the
# wildcard action or resource, and it is acceptable only for the statements described here.
# Each entry: finding pattern (regex on the finding id), the actions the statement may hold,
# and the reason.
WILDCARDS: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    (
        r"Resource::arn:(<AWS::Partition>|aws[a-z-]*):states:(<AWS::Region>|[a-z0-9-]+):"
        r"(<AWS::AccountId>|\d{12}):execution:<(RenewalSweep|BulkOperation)StateMachine\.Name>/\*",
        frozenset({"states:DescribeExecution", "states:StopExecution"}),
        "A distributed Map's child executions of its own state machine (cdk/state_machine.py): "
        "their names are generated per map run, so only the machine's name can be fixed.",
    ),
    (
        r"Resource::\*",
        frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}),
        "X-Ray trace upload (Lambda active tracing): these actions have no resource-level "
        "permissions, so the resource must be *.",
    ),
    (
        r"Resource::\*",
        frozenset({"route53:ListHostedZonesByName"}),
        "ACME dns-01 without a configured hosted zone id: finding the zone takes "
        "ListHostedZonesByName, which has no resource-level permissions.",
    ),
    (
        r"Action::kms:(GenerateDataKey|ReEncrypt)\*",
        None,
        "CDK's table grant on the table's own customer-managed key (resource is that key "
        "only); DynamoDB needs the data-key variants.",
    ),
    (
        r"Resource::.*/index/\*",
        None,
        "Queries on the inventory table's own global secondary indexes (expiry buckets, "
        "issuer+serial, device, tenant); the table itself is named.",
    ),
    (
        r"Resource::(<StatusBucket[0-9A-F]{8}\.Arn>"
        r"|CertplaneStatus:ExportsOutputFnGetAttStatusBucket[0-9A-F]{8}Arn[0-9A-F]{8})/\*",
        frozenset({"s3:GetObject", "s3:PutObject"}),
        "Objects of the status bucket only (CRL shards, CA certificates): Get/Put objects, "
        "no list, no delete, no bucket configuration.",
    ),
    (
        r"Resource::<EvidenceBucket[0-9A-F]{8}\.Arn>/\*",
        frozenset({"s3:PutObject", "s3:AbortMultipartUpload"}),
        "Firehose adds objects under date prefixes of the evidence bucket: put and abort "
        "uploads only, no read, no delete, no bucket configuration.",
    ),
    (
        r"Resource::\*",
        frozenset(
            {
                "logs:CreateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:DescribeLogGroups",
                "logs:DescribeResourcePolicies",
                "logs:GetLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:UpdateLogDelivery",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments",
            }
        ),
        "Step Functions execution logging (vended log delivery) and X-Ray tracing: CDK's "
        "statement for state machine logs; these actions take no resource-level permissions.",
    ),
    (
        r"Resource::<[A-Za-z0-9]+\.Arn>:\*",
        frozenset({"lambda:InvokeFunction"}),
        "A state machine invoking its own step function: the function and its versions or "
        "aliases (ARN:*), nothing else.",
    ),
    (
        rf"Resource::arn:{PARTITION}:states:{REGION}:{ACCOUNT}:execution:.+:\*",
        frozenset(
            {"states:DescribeExecution", "states:StopExecution", "states:GetExecutionHistory"}
        ),
        "Executions of certplane's own state machines (named by the state machine's name); "
        "execution names are only known at run time.",
    ),
    (
        rf"Resource::arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/\*",
        frozenset({"kms:Sign", "kms:GetPublicKey"}),
        "KMS CA key configured by alias: any key of that account and region, but only when "
        "the request names it through that alias (kms:RequestAlias condition).",
    ),
    (
        rf"Resource::arn:{PARTITION}:s3:::[^/]+/.*\*",
        frozenset({"s3:GetObject", "s3:PutObject"}),
        "ACME account state objects under the configured s3://bucket/prefix only.",
    ),
    (
        rf"Resource::arn:{PARTITION}:route53:::change/\*",
        frozenset({"route53:GetChange"}),
        "ACME dns-01 polls its own Route 53 change; change ids are only known at run time.",
    ),
    (
        rf"Resource::arn:{PARTITION}:route53:::hostedzone/\*",
        frozenset({"route53:ChangeResourceRecordSets"}),
        "ACME dns-01 without a configured zone (a synth warning says so): record changes are "
        "limited to _acme-challenge.* names by condition.",
    ),
)


class _Renderer:
    """Resolved policy values as cdk-nag writes them in finding ids (`<Id.Arn>`, ...).

    A reference to another stack's resource is rendered as the import CDK will make of it
    (`Stack.export_value` yields the very export the automatic cross-stack reference uses).
    """

    def __init__(self, app: App) -> None:
        self.owners: dict[tuple[str, str], CfnResource] = {}  # (stack, logical id) -> resource
        for construct in app.node.find_all():
            if isinstance(construct, CfnResource):
                stack = Stack.of(construct)
                self.owners[(stack.stack_name, stack.resolve(construct.logical_id))] = construct

    def _imported(self, stack: Stack, logical_id: str, attribute: str | None) -> str | None:
        if (stack.stack_name, logical_id) in self.owners:
            return None
        for (producer_name, owned_id), resource in self.owners.items():
            if owned_id == logical_id and producer_name != stack.stack_name:
                producer = Stack.of(resource)
                value = resource.get_att(attribute) if attribute else resource.ref
                imported = producer.resolve(producer.export_value(value))
                return str(imported["Fn::ImportValue"])
        return None

    def imported(self, value: Any, stack: Stack) -> Any:
        """`value` with references to other stacks' resources replaced by their imports."""
        if isinstance(value, list):
            return [self.imported(item, stack) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            name = None
            if key == "Ref" and isinstance(arg, str) and not arg.startswith("AWS::"):
                name = self._imported(stack, arg, None)
            elif key == "Fn::GetAtt":
                name = self._imported(stack, arg[0], arg[1])
            if name is not None:
                return {"Fn::ImportValue": name}
        return {key: self.imported(arg, stack) for key, arg in value.items()}

    def render(self, value: Any, stack: Stack) -> str:
        return self._render(self.imported(value, stack))

    def _render(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return f"<{arg}>"
            if key == "Fn::GetAtt":
                return f"<{'.'.join(arg)}>"
            if key == "Fn::ImportValue" and isinstance(arg, str):
                return arg
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(self._render(part) for part in parts)
        return json.dumps(value, separators=(",", ":"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(resource: CfnResource) -> Iterator[dict[str, Any]]:
    if isinstance(resource, iam.CfnPolicy):
        yield from _resolved(resource, resource.policy_document).get("Statement", [])
    elif isinstance(resource, iam.CfnRole):
        for policy in _resolved(resource, resource.policies) or []:
            yield from policy["PolicyDocument"].get("Statement", [])


def wildcard_acknowledgements(resource: CfnResource, renderer: _Renderer) -> list[Acknowledgement]:
    """One acknowledgement per IAM5 finding of `resource` that `WILDCARDS` justifies.

    A finding is acknowledged only if every statement producing it is covered by the same
    entry, so a new statement with an unexplained wildcard still fails the synth.
    """
    findings: dict[str, list[set[str]]] = {}
    for statement in _statements(resource):
        if statement.get("Effect") != "Allow":
            continue
        actions = {str(action) for action in _as_list(statement.get("Action", []))}
        for action in actions:
            if "*" in action:
                findings.setdefault(f"Action::{action}", []).append(actions)
        for target in _as_list(statement.get("Resource", [])):
            text = renderer.render(target, Stack.of(resource))
            if "*" in text:
                findings.setdefault(f"Resource::{text}", []).append(actions)
    acknowledgements = []
    for finding, action_sets in sorted(findings.items()):
        for pattern, allowed, reason in WILDCARDS:
            if not re.fullmatch(pattern, finding):
                continue
            if allowed is None or all(actions <= allowed for actions in action_sets):
                acknowledgements.append(_ack(f"IAM5[{finding}]", reason))
                break
    return acknowledgements


def acknowledgements_for(resource: CfnResource, renderer: _Renderer) -> list[Acknowledgement]:
    found = [ack for rule in RULES if rule.matches(resource) for ack in rule.acknowledgements]
    if isinstance(resource, iam.CfnPolicy | iam.CfnRole):
        found += wildcard_acknowledgements(resource, renderer)
    if isinstance(resource, iam.CfnRole):
        for arn in _as_list(_resolved(resource, resource.managed_policy_arns) or []):
            text = renderer.render(arn, Stack.of(resource))
            reason = MANAGED_POLICIES.get(text.rpartition("/")[2])
            if reason:
                found.append(_ack(f"IAM4[Policy::{text}]", reason))
    unique: dict[str, Acknowledgement] = {}
    for ack in found:
        unique.setdefault(ack.rule_id, ack)
    return list(unique.values())


def apply(app: App) -> list[tuple[str, Acknowledgement]]:
    """Add the AwsSolutions checks and every acknowledgement; returns (path, ack) pairs.

    Call after every stack is built (acknowledgements are chosen by looking at resources).
    """
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    applied = []
    renderer = _Renderer(app)
    for construct in app.node.find_all():
        if not isinstance(construct, CfnResource) or Token.is_unresolved(construct.node.path):
            continue
        for ack in acknowledgements_for(construct, renderer):
            Validations.of(construct).acknowledge(Acknowledgment(id=ack.rule_id, reason=ack.reason))
            applied.append((construct.node.path, ack))
    return applied


def nag_enabled(app: App | IConstruct) -> bool:
    """Context `nag` (cdk.json sets true); `-c nag=false` turns the checks off for a synth."""
    value = app.node.try_get_context("nag")
    return value not in (False, "false", "False", "0", 0)
