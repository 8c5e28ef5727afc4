"""The configuration drives the CertBridge role: each configured CA engine's IAM grants, exactly.

One synth (about 5 s) of the whole app from a temporary TOML (context `config`) naming a KMS
key by ARN and by alias, a Private CA, an ACME CA (S3 state, Route 53, secrets) and a PKCS#11
CA, plus a probe function that does not sign. The CertBridge role must hold exactly the
statements those engines need and trust exactly the signing functions' roles; those roles may
only assume it, and no other role may hold any engine permission.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aws, Stack, cx_api

from app import build_app, create_app
from cdk.deployed_config import DeployedConfig
from cdk.engine_grants import PCA_CA_ACTIONS, EngineGrants
from cdk.handler_function import HandlerFunction
from certbridge.aws_session import ROLE_ENV
from certplane.config import Settings
from certplane.resources import FUNCTIONS, OCSP, STATUS_FUNCTIONS, WORKFLOW_FUNCTIONS
from tests.full_app import (
    AWS_CAS,
    CA_ARN,
    KEY_ALIAS,
    KEY_ARN,
    PASSPHRASE_SECRET,
    PIN_SECRET_ARN,
    ZONE,
)

PCA_TEMPLATES = (
    "EndEntityServerAuthCertificate_APIPassthrough/V1",
    "EndEntityClientAuthCertificate_APIPassthrough/V1",
    "EndEntityCertificate_APIPassthrough/V1",
    "BlankEndEntityCertificate_APIPassthrough/V1",
    "BlankEndEntityCertificate_CriticalBasicConstraints_APIPassthrough/V1",
)
SIGNING = tuple(spec for spec in FUNCTIONS + STATUS_FUNCTIONS + WORKFLOW_FUNCTIONS if spec.signs)
CERTBRIDGE = "CertplaneCertBridge"
# A function that does not sign: it must get none of the engines' permissions.
PROBE = dataclasses.replace(OCSP, logical_id="Probe", handler="lambdas.probe.handler", signs=False)
ENGINE_SERVICES = ("kms", "acm-pca", "secretsmanager", "route53", "s3")
Triple = tuple[str, str, str]  # action, resource (JSON), condition (JSON)


@dataclass(frozen=True)
class Synth:
    templates: dict[str, dict[str, Any]]  # stack name -> template
    warnings: list[str]
    resolve: Any  # Stack.resolve of some stack (pseudo parameters resolve alike everywhere)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    folder = tmp_path_factory.mktemp("config")
    config = folder / "certplane.toml"
    defaults = DeployedConfig.load().text
    config.write_text(defaults + AWS_CAS)
    app = create_app(outdir=str(folder / "cdk.out"), context={"config": str(config)})
    stacks = build_app(app)
    probe = Stack(app, "CertplaneProbe")
    inventory, events = stacks["inventory"], stacks["events"]
    HandlerFunction(
        probe,
        PROBE.logical_id,
        spec=PROBE,
        tables=inventory.tables,  # type: ignore[attr-defined]
        bus=events.bus,  # type: ignore[attr-defined]
        config=DeployedConfig.load(config),
    )
    assembly = app.synth()
    names = [stack.stack_name for stack in (*stacks.values(), probe)]
    templates = {name: assembly.get_stack_by_name(name).template for name in names}
    warnings = [
        str(message.entry.data)
        for name in names
        for message in assembly.get_stack_by_name(name).messages
        if message.level == cx_api.SynthesisMessageLevel.WARNING
    ]
    return Synth(templates, warnings, probe.resolve)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _engine_triples(statement: dict[str, Any]) -> set[Triple]:
    """The (action, resource, condition) triples of a statement that belong to CA engines.

    Grants on keys this app creates (kms:Decrypt... on the tables' and evidence bucket's own
    keys; CA keys are configured ARNs) and the status bucket grant
    (s3 on a bucket of this app, a GetAtt) are the tables' and bucket's, not an engine's.
    """
    triples: set[Triple] = set()
    for action in _as_list(statement["Action"]):
        service = action.split(":", 1)[0]
        if service not in ENGINE_SERVICES:
            continue
        for resource in _as_list(statement["Resource"]):
            text = _dump(resource)
            if service == "kms" and ("Fn::ImportValue" in text or "Fn::GetAtt" in text):
                continue  # a key this app creates (tables, evidence bucket): not a CA's
            if service == "s3" and ("Fn::GetAtt" in text or "Fn::ImportValue" in text):
                continue  # the status bucket (its own stack's, or imported)
            triples.add((action, text, _dump(statement.get("Condition"))))
    return triples


def _statements_by_role(synth: Synth) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(stack, role logical id) -> every statement of its inline and attached policies."""
    by_role: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for stack, template in synth.templates.items():
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Policy":
                for role in props["Roles"]:
                    statements = props["PolicyDocument"]["Statement"]
                    by_role.setdefault((stack, role["Ref"]), []).extend(statements)
            elif resource["Type"] == "AWS::IAM::Role":
                by_role.setdefault((stack, logical_id), [])
                for policy in props.get("Policies", []):
                    by_role[(stack, logical_id)].extend(policy["PolicyDocument"]["Statement"])
    return by_role


def _function_roles(synth: Synth) -> dict[tuple[str, str], str]:
    """(stack, role logical id) -> the handler of the function assuming it."""
    roles = {}
    for stack, template in synth.templates.items():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Lambda::Function":
                props = resource["Properties"]
                roles[(stack, props["Role"]["Fn::GetAtt"][0])] = props["Handler"]
    return roles


def _expected(synth: Synth) -> set[Triple]:
    resolve = synth.resolve
    none = _dump(None)
    alias_keys = _dump(resolve(f"arn:{Aws.PARTITION}:kms:eu-west-1:{Aws.ACCOUNT_ID}:key/*"))
    kms_message_types = {"kms:MessageType": ["RAW", "DIGEST", "EXTERNAL_MU"]}
    by_alias = {"kms:RequestAlias": KEY_ALIAS}
    templates = [f"arn:aws:acm-pca:::template/{name}" for name in PCA_TEMPLATES]
    passphrase = resolve(
        f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:"
        f"{PASSPHRASE_SECRET}-??????"
    )
    return {
        # kms, key by ARN: that key only; Sign for the message types the engine uses.
        ("kms:Sign", _dump(KEY_ARN), _dump({"StringEquals": kms_message_types})),
        ("kms:GetPublicKey", _dump(KEY_ARN), none),
        # kms, key by alias: any key, but only when named through that alias.
        ("kms:Sign", alias_keys, _dump({"StringEquals": {**by_alias, **kms_message_types}})),
        ("kms:GetPublicKey", alias_keys, _dump({"StringEquals": by_alias})),
        # pca: issue only with the APIPassthrough end-entity templates; the rest on the CA.
        (
            "acm-pca:IssueCertificate",
            _dump(CA_ARN),
            _dump({"StringEquals": {"acm-pca:TemplateArn": templates}}),
        ),
        *((action, _dump(CA_ARN), none) for action in PCA_CA_ACTIONS),
        # acme: its S3 state prefix, its secret (by name), its hosted zone.
        (
            "s3:GetObject",
            _dump(resolve(f"arn:{Aws.PARTITION}:s3:::certplane-acme-state/accounts/public/*")),
            none,
        ),
        (
            "s3:PutObject",
            _dump(resolve(f"arn:{Aws.PARTITION}:s3:::certplane-acme-state/accounts/public/*")),
            none,
        ),
        ("secretsmanager:GetSecretValue", _dump(passphrase), none),
        (
            "route53:ChangeResourceRecordSets",
            _dump(resolve(f"arn:{Aws.PARTITION}:route53:::hostedzone/{ZONE}")),
            _dump(
                {
                    "ForAllValues:StringLike": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                            "_acme-challenge.*"
                        ]
                    }
                }
            ),
        ),
        ("route53:GetChange", _dump(resolve(f"arn:{Aws.PARTITION}:route53:::change/*")), none),
        # pkcs11: only its PIN secret (by full ARN) in IAM.
        ("secretsmanager:GetSecretValue", _dump(PIN_SECRET_ARN), none),
    }


def test_pca_templates_are_the_ones_the_engine_chooses() -> None:
    from cdk.engine_grants import PCA_TEMPLATES as granted

    assert sorted(granted) == sorted(PCA_TEMPLATES)


def _certbridge_role(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, resource["Properties"])
        for logical_id, resource in synth.templates[CERTBRIDGE]["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    ]
    return found


def _certbridge_arn(synth: Synth) -> Any:
    """The CertBridge role's ARN as a function stack names it (from the name, no import)."""
    return synth.resolve(
        f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/CertplaneCertBridge-signer-{Aws.REGION}"
    )


def test_certbridge_role_holds_exactly_the_engines_permissions(synth: Synth) -> None:
    role_id, role = _certbridge_role(synth)
    assert role["RoleName"] == synth.resolve(f"CertplaneCertBridge-signer-{Aws.REGION}")
    statements = _statements_by_role(synth)[(CERTBRIDGE, role_id)]
    granted = set().union(*(_engine_triples(s) for s in statements))
    assert granted == _expected(synth), granted ^ _expected(synth)
    # Nothing but the engines' statements (no logs, no tables): it only signs.
    services = {a.split(":")[0] for s in statements for a in _as_list(s["Action"])}
    assert services <= set(ENGINE_SERVICES)


def _exports(synth: Synth) -> dict[str, tuple[str, str]]:
    """Export name -> (stack, role logical id) for every exported role ARN."""
    exports = {}
    for stack, template in synth.templates.items():
        for output in template.get("Outputs", {}).values():
            value = output["Value"]
            if "Export" in output and "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "Arn":
                exports[output["Export"]["Name"]] = (stack, value["Fn::GetAtt"][0])
    return exports


def test_certbridge_trusts_exactly_the_signing_functions_roles(synth: Synth) -> None:
    _, role = _certbridge_role(synth)
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"
    assert set(statement["Principal"]) == {"AWS"}
    exports = _exports(synth)
    trusted = {exports[p["Fn::ImportValue"]] for p in _as_list(statement["Principal"]["AWS"])}
    roles = _function_roles(synth)
    signing = {role for role, handler in roles.items() if handler in {s.handler for s in SIGNING}}
    assert trusted == signing
    assert {roles[role] for role in trusted} == {spec.handler for spec in SIGNING}


def test_signing_functions_may_only_assume_the_certbridge_role(synth: Synth) -> None:
    arn = _certbridge_arn(synth)
    by_role = _statements_by_role(synth)
    signing_handlers = {spec.handler for spec in SIGNING}
    seen = set()
    for stack, template in synth.templates.items():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            props = resource["Properties"]
            role = (stack, props["Role"]["Fn::GetAtt"][0])
            statements = by_role[role]
            assumes = [s for s in statements if "sts:AssumeRole" in _as_list(s["Action"])]
            env = props.get("Environment", {}).get("Variables", {})
            assert not set().union(set(), *(_engine_triples(s) for s in statements)), role
            if props["Handler"] in signing_handlers:
                seen.add(props["Handler"])
                (assume,) = assumes
                assert assume["Action"] == "sts:AssumeRole" and assume["Resource"] == arn
                assert env[ROLE_ENV] == arn
            else:
                assert not assumes and ROLE_ENV not in env, role
            sts = {a for s in statements for a in _as_list(s["Action"]) if a.startswith("sts:")}
            assert sts <= {"sts:AssumeRole"}
    assert seen == signing_handlers


def test_no_other_role_holds_any_engine_permission(synth: Synth) -> None:
    roles = _function_roles(synth)
    certbridge_role = (CERTBRIDGE, _certbridge_role(synth)[0])
    others = [role for role in _statements_by_role(synth) if role != certbridge_role]
    assert any(roles.get(role) == PROBE.handler and role[0] == "CertplaneProbe" for role in others)
    assert len(others) >= 3 + len(SIGNING)  # the probe, scheduler and API Gateway roles too
    by_role = _statements_by_role(synth)
    for role in others:
        leaked = set().union(set(), *(_engine_triples(s) for s in by_role[role]))
        assert not leaked, (role, leaked)


def test_a_signing_function_built_after_the_certbridge_stack_is_refused(tmp_path: Path) -> None:
    app = create_app(outdir=str(tmp_path))
    stacks = build_app(app)
    late = Stack(app, "Late")
    with pytest.raises(ValueError, match="CertBridge stack is already built"):
        HandlerFunction(
            late,
            "LateSigner",
            spec=dataclasses.replace(PROBE, signs=True),
            tables=stacks["inventory"].tables,  # type: ignore[attr-defined]
            bus=stacks["events"].bus,  # type: ignore[attr-defined]
            config=DeployedConfig.load(),
        )


def test_pkcs11_and_local_engines_are_flagged_at_synth(synth: Synth) -> None:
    assert any("'hsm' uses the pkcs11 engine" in w and "VPC" in w for w in synth.warnings)
    assert any("'local-dev' uses the local software engine: dev-only" in w for w in synth.warnings)
    # The AWS engines configured here need no warning (zone pinned, state in S3).
    assert not any("'public-acme'" in w or "'fleet-" in w for w in synth.warnings)


def test_functions_ship_the_configuration_given_in_context(synth: Synth) -> None:
    for template in synth.templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Lambda::LayerVersion" and not resource["Properties"][
                "Description"
            ].startswith("certplane runtime dependencies"):
                assert "certplane.toml" in resource["Properties"]["Description"]
                assert "packaged defaults" not in resource["Properties"]["Description"]


# -- configuration errors fail the synth (no synth needed to see them) -----------------


def _settings(cas: str) -> Settings:
    text = DeployedConfig.load().text
    return Settings.from_toml(text + cas)


@pytest.mark.parametrize(
    ("cas", "message"),
    [
        ('[[cas]]\nid = "k"\nengine = "kms"\n', "needs options.key_id"),
        (
            '[[cas]]\nid = "p"\nengine = "pca"\n[cas.options]\nca_arn = "arn:aws:kms:x:1:key/k"\n',
            "needs options.ca_arn",
        ),
        ('[[cas]]\nid = "u"\nengine = "nosuch"\n', "unknown engine"),
    ],
)
def test_bad_engine_options_fail_the_synth(cas: str, message: str) -> None:
    stack = Stack(App(), "S")
    with pytest.raises(ValueError, match=message):
        EngineGrants(stack, "EngineGrants", settings=_settings(cas))


def test_a_signing_spec_without_engines_beyond_local_gets_no_statements() -> None:
    stack = Stack(App(), "S")
    grants = EngineGrants(stack, "EngineGrants", settings=DeployedConfig.load().settings)
    assert grants.statements == []
