"""cdk-nag AwsSolutions: the whole app passes, and every acknowledgement says why.

The synth runs the checks the way `cdk synth` does (app.py, context `nag`); the report cdk-nag
writes next to the templates is read back, independently of the acknowledgement module.
"""

from __future__ import annotations

import json
import re

import pytest

from cdk import nag_acknowledgements
from tests.full_app import FullSynth, full_synth


@pytest.fixture(scope="module")
def synth() -> FullSynth:
    return full_synth()


def _violations(synth: FullSynth) -> list[tuple[str, str, str]]:
    report = synth.outdir / "validation-report.json"
    if not report.is_file():
        return []
    found = []
    for plugin in json.loads(report.read_text())["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                found.append(
                    (violation["severity"], violation["ruleName"], construct["constructPath"])
                )
    return found


def test_no_unacknowledged_aws_solutions_findings(synth: FullSynth) -> None:
    violations = _violations(synth)
    assert not violations, "\n".join(" ".join(v) for v in violations)
    assert synth.error is None, synth.error


# Deployment choices made with CDK context add resources of their own (a Cognito user pool,
# IAM authorization, an mTLS custom domain, an external alarm topic): each must pass too.
VARIANTS = {
    "jwt-created-pool": (("management_auth", "jwt"),),
    "iam": (("management_auth", "iam"),),
    "mtls-domain": (
        ("enrollment_domain_name", "enroll.example.com"),
        ("enrollment_certificate_arn", "arn:aws:acm:eu-west-1:111122223333:certificate/abcd-1234"),
        ("enrollment_truststore_uri", "s3://certplane-trust/truststore.pem"),
        ("alarm_topic_arn", "arn:aws:sns:eu-west-1:111122223333:ops"),
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_deployment_variants_pass_too(variant: str) -> None:
    synth = full_synth(VARIANTS[variant])
    violations = _violations(synth)
    assert not violations, "\n".join(" ".join(v) for v in violations)
    assert synth.error is None, synth.error
    assert len(synth.templates) >= 8


def test_the_checks_ran_and_acknowledgements_reached_the_templates(synth: FullSynth) -> None:
    # write_suppressions_to_cloud_formation copies each acknowledgement into the resource's
    # Metadata: proof that the AwsSolutions pack ran and saw them, and an audit trail.
    in_templates = {
        (stack, logical_id, rule["id"]): rule.get("reason", "")
        for stack, template in synth.templates.items()
        for logical_id, resource in template["Resources"].items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert len(in_templates) >= len(synth.stacks)
    ids = {rule_id for _, _, rule_id in in_templates}
    for expected in ("AwsSolutions-L1", "AwsSolutions-IAM5[Resource::*]", "AwsSolutions-APIG2"):
        assert expected in ids


def test_every_acknowledgement_has_a_real_reason(synth: FullSynth) -> None:
    assert synth.acknowledged
    for path, ack in synth.acknowledged:
        assert re.fullmatch(r"AwsSolutions-[A-Z]+[0-9]+(\[.+\])?", ack.rule_id), (path, ack)
        words = ack.reason.split()
        assert len(words) >= 8, (path, ack)  # a sentence, not "ok" or "n/a"
        assert ack.reason.lower() not in {"not needed", "false positive", "suppressed"}


def test_function_roles_carry_no_managed_policy(synth: FullSynth) -> None:
    # Fixed rather than acknowledged: no AWSLambdaBasicExecutionRole (AwsSolutions-IAM4).
    for template in synth.templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            role_id = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            role = template["Resources"][role_id]["Properties"]
            assert "ManagedPolicyArns" not in role, role_id


def test_an_unexplained_wildcard_is_not_acknowledged() -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_iam as iam

    stack = Stack(App(), "S")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:*"], resources=["*"]))
    role.add_to_policy(iam.PolicyStatement(actions=["xray:PutTraceSegments"], resources=["*"]))
    policy = role.node.find_child("DefaultPolicy").node.default_child
    renderer = nag_acknowledgements._Renderer(stack.node.root)
    found = {a.rule_id for a in nag_acknowledgements.wildcard_acknowledgements(policy, renderer)}
    # Resource::* is shared by the X-Ray statement and s3:* on everything: not justified.
    assert found == set()
