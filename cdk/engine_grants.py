"""The IAM permissions the configured CA engines need, held by the CertBridge role alone.

Read from the same `Settings` the functions load: each `[[cas]]` entry's engine and options
decide exactly which keys, private CAs, secrets, S3 prefixes and hosted zones the CertBridge
signing role (stacks/certbridge_stack.py) may touch. Functions that sign
(`FunctionSpec.signs`) get none of it: `grant_to` lets them assume that role (and names it in
CERTPLANE_CERTBRIDGE_ROLE_ARN, which `certbridge.aws_session` reads), and records their roles
for the CertBridge role's trust policy.

The CertBridge role has a name derived from the region, so a function stack can name its ARN
without referencing the CertBridge stack: only the CertBridge stack refers to the function
roles (its trust policy), and CloudFormation stays free of cycles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from aws_cdk import Annotations, ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from certbridge.aws_session import ROLE_ENV
from certbridge.engines import ENGINE_TYPES
from certbridge.engines.pca import (
    _NAMED_TEMPLATES,
    BLANK_CRITICAL_BC_TEMPLATE,
    BLANK_TEMPLATE,
)
from certplane.config import CARegistration, Settings

# Every template `certbridge.engines.pca.template_name` can choose; IssueCertificate is
# allowed with these only (acm-pca:TemplateArn), so a stolen role cannot mint a CA certificate.
PCA_TEMPLATES = (*_NAMED_TEMPLATES.values(), BLANK_TEMPLATE, BLANK_CRITICAL_BC_TEMPLATE)
PCA_CA_ACTIONS = (
    "acm-pca:DescribeCertificateAuthority",
    "acm-pca:GetCertificate",
    "acm-pca:GetCertificateAuthorityCertificate",
    "acm-pca:RevokeCertificate",
)
# The KMS engine signs the TBSCertificate as RAW (it is far below KMS's 4096-byte limit) and
# pre-hashes only larger ones (DIGEST for ECDSA/RSA, EXTERNAL_MU for ML-DSA); see engines/kms.py.
KMS_MESSAGE_TYPES = ("RAW", "DIGEST", "EXTERNAL_MU")
ACME_CHALLENGE_RECORDS = "_acme-challenge.*"

# The construct id of the CertBridge stack in the app (app.py builds it under this id).
CERTBRIDGE_STACK_ID = "CertplaneCertBridge"


def certbridge_role_name() -> str:
    """`CertplaneCertBridge-signer-<region>`: one per account and region, known everywhere."""
    return f"{CERTBRIDGE_STACK_ID}-signer-{Aws.REGION}"


def certbridge_role_arn(scope: Construct) -> str:
    return Stack.of(scope).format_arn(
        service="iam", region="", resource="role", resource_name=certbridge_role_name()
    )


_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):(?P<service>[^:]+):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$"
)
_SID_WORDS = re.compile(r"[^A-Za-z0-9]+")


def _sid(*parts: str) -> str:
    """`("Kms", "fleet-kms", "Sign")` -> "KmsFleetKmsSign" (Sids are alphanumeric)."""
    words = (word for part in parts for word in _SID_WORDS.split(part) if word)
    return "".join(word[:1].upper() + word[1:] for word in words)


def _secret_options(options: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """Every `*_secret` option (nested tables too, e.g. dns_provider_options) and its value."""
    for name, value in options.items():
        if isinstance(value, Mapping):
            yield from _secret_options(value, f"{path}{name}.")
        elif name.endswith("_secret") and value:
            yield f"{path}{name}", str(value)


def _file_options(options: Mapping[str, Any], path: str = "") -> Iterator[str]:
    for name, value in options.items():
        if isinstance(value, Mapping):
            yield from _file_options(value, f"{path}{name}.")
        elif name.endswith("_file") and value:
            yield f"{path}{name}"


class EngineGrants(Construct):
    """The engines' statements for one stack; `grant_to(function)` attaches them to a role.

    Engines that need nothing in IAM (local) or need wiring this construct cannot build
    (pkcs11: a VPC path to the HSM) say so as synth-time warnings, the way cdk-nag does.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.clients: list[iam.IRole] = []
        self.statements: list[iam.PolicyStatement] = [
            statement for ca in settings.cas for statement in self._statements(ca)
        ]

    @classmethod
    def of(cls, scope: Construct, settings: Settings) -> EngineGrants:
        """The stack's engine grants, created on first use."""
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("EngineGrants")
        if isinstance(existing, EngineGrants):
            return existing
        return cls(stack, "EngineGrants", settings=settings)

    def grant_to(self, function: lambda_.Function) -> None:
        """Let `function` assume the CertBridge role (only that) and tell it the role's ARN."""
        if Stack.of(self).node.root.node.try_find_child(CERTBRIDGE_STACK_ID) is not None:
            raise ValueError(
                "the CertBridge stack is already built: build it after every stack with "
                f"signing functions, or {function.node.path} cannot assume its role"
            )
        role_arn = certbridge_role_arn(self)
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="AssumeCertBridge", actions=["sts:AssumeRole"], resources=[role_arn]
            )
        )
        function.add_environment(ROLE_ENV, role_arn)
        if function.role is not None:
            self.clients.append(function.role)

    @staticmethod
    def clients_in(scope: Construct) -> list[iam.IRole]:
        """The roles of every signing function in the app, over all stacks."""
        return [
            role
            for construct in scope.node.root.node.find_all()
            if isinstance(construct, EngineGrants)
            for role in construct.clients
        ]

    # -- per engine ---------------------------------------------------------------------

    def _statements(self, ca: CARegistration) -> list[iam.PolicyStatement]:
        if ca.engine not in ENGINE_TYPES:
            raise ValueError(f"CA {ca.id}: unknown engine {ca.engine!r}")
        statements: list[iam.PolicyStatement] = []
        if ca.engine == "local":
            self._warn(
                "LocalEngine",
                f"CA {ca.id!r} uses the local software engine: dev-only (its key lives in the "
                "function's /tmp, differs per instance and is not HSM-backed). Use kms, pca, "
                "pkcs11, acme or certifier in AWS.",
            )
        elif ca.engine == "kms":
            statements += self._kms(ca)
        elif ca.engine == "pca":
            statements += self._pca(ca)
        elif ca.engine == "pkcs11":
            self._warn(
                "Pkcs11Engine",
                f"CA {ca.id!r} uses the pkcs11 engine: it needs the functions in a VPC that "
                "reaches the HSM (CloudHSM cluster or network HSM) and the PKCS#11 module in "
                "a layer; neither is built by these stacks yet.",
            )
        elif ca.engine == "acme":
            statements += self._acme(ca)
        statements += self._secrets(ca)
        for option in sorted(_file_options(ca.options)):
            self._warn(
                "EngineFileOption",
                f"CA {ca.id!r}: option {option} names a file, which must exist inside the "
                "function (the code asset is the repository's packages; the config layer is "
                "only the TOML); prefer the *_pem or *_secret form in AWS.",
            )
        return statements

    def _kms(self, ca: CARegistration) -> list[iam.PolicyStatement]:
        key = str(ca.options.get("key_id") or "")
        if not key:
            raise ValueError(f"CA {ca.id}: the kms engine needs options.key_id")
        region = ca.options.get("region") or Aws.REGION
        conditions: dict[str, Any] = {}
        match = _ARN.match(key)
        if match and match["resource"].startswith("key/"):
            resource = key
        elif match and match["resource"].startswith("alias/"):
            # An alias names no key: allow any key of that account and region, but only when
            # the request names it through this alias (kms:RequestAlias).
            resource = f"arn:{match['partition']}:kms:{match['region']}:{match['account']}:key/*"
            conditions["StringEquals"] = {"kms:RequestAlias": match["resource"]}
        elif key.startswith("alias/"):
            resource = f"arn:{Aws.PARTITION}:kms:{region}:{Aws.ACCOUNT_ID}:key/*"
            conditions["StringEquals"] = {"kms:RequestAlias": key}
        elif not match:
            resource = f"arn:{Aws.PARTITION}:kms:{region}:{Aws.ACCOUNT_ID}:key/{key}"
        else:
            raise ValueError(f"CA {ca.id}: {key!r} is neither a KMS key nor an alias")
        sign_conditions = {
            **conditions,
            "StringEquals": {
                **conditions.get("StringEquals", {}),
                "kms:MessageType": list(KMS_MESSAGE_TYPES),
            },
        }
        return [
            iam.PolicyStatement(
                sid=_sid("Kms", ca.id, "Sign"),
                actions=["kms:Sign"],
                resources=[resource],
                conditions=sign_conditions,
            ),
            iam.PolicyStatement(
                sid=_sid("Kms", ca.id, "PublicKey"),
                actions=["kms:GetPublicKey"],
                resources=[resource],
                conditions=conditions or None,
            ),
        ]

    def _pca(self, ca: CARegistration) -> list[iam.PolicyStatement]:
        ca_arn = str(ca.options.get("ca_arn") or "")
        match = _ARN.match(ca_arn)
        if not match or match["service"] != "acm-pca":
            raise ValueError(f"CA {ca.id}: the pca engine needs options.ca_arn (a private CA ARN)")
        partition = match["partition"]
        templates = [f"arn:{partition}:acm-pca:::template/{name}" for name in PCA_TEMPLATES]
        return [
            iam.PolicyStatement(
                sid=_sid("Pca", ca.id, "Issue"),
                actions=["acm-pca:IssueCertificate"],
                resources=[ca_arn],
                conditions={"StringEquals": {"acm-pca:TemplateArn": templates}},
            ),
            iam.PolicyStatement(
                sid=_sid("Pca", ca.id, "Ca"), actions=list(PCA_CA_ACTIONS), resources=[ca_arn]
            ),
        ]

    def _acme(self, ca: CARegistration) -> list[iam.PolicyStatement]:
        statements: list[iam.PolicyStatement] = []
        state = str(ca.options.get("state") or "")
        if state.startswith("s3://"):
            bucket, _, prefix = state.removeprefix("s3://").partition("/")
            prefix = prefix.strip("/")
            objects = f"{prefix}/*" if prefix else "*"
            statements.append(
                iam.PolicyStatement(
                    sid=_sid("Acme", ca.id, "State"),
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}/{objects}"],
                )
            )
        elif state:
            self._warn(
                "AcmeLocalState",
                f"CA {ca.id!r}: ACME state {state!r} is a folder; in Lambda use s3://bucket/prefix.",
            )
        if ca.options.get("dns_provider") == "route53":
            zone = (ca.options.get("dns_provider_options") or {}).get("hosted_zone_id")
            if zone:
                zones = [f"arn:{Aws.PARTITION}:route53:::hostedzone/{zone}"]
            else:
                zones = [f"arn:{Aws.PARTITION}:route53:::hostedzone/*"]
                statements.append(
                    iam.PolicyStatement(
                        sid=_sid("Acme", ca.id, "FindZone"),
                        actions=["route53:ListHostedZonesByName"],
                        resources=["*"],
                    )
                )
                self._warn(
                    "AcmeRoute53AnyZone",
                    f"CA {ca.id!r}: set dns_provider_options.hosted_zone_id to limit "
                    "ChangeResourceRecordSets to one hosted zone.",
                )
            statements += [
                iam.PolicyStatement(
                    sid=_sid("Acme", ca.id, "Dns"),
                    actions=["route53:ChangeResourceRecordSets"],
                    resources=zones,
                    conditions={
                        "ForAllValues:StringLike": {
                            "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                                ACME_CHALLENGE_RECORDS
                            ]
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid=_sid("Acme", ca.id, "DnsChange"),
                    actions=["route53:GetChange"],
                    resources=[f"arn:{Aws.PARTITION}:route53:::change/*"],
                ),
            ]
        return statements

    def _secrets(self, ca: CARegistration) -> list[iam.PolicyStatement]:
        resources = sorted({self._secret_arn(value) for _, value in _secret_options(ca.options)})
        if not resources:
            return []
        return [
            iam.PolicyStatement(
                sid=_sid("Secrets", ca.id),
                actions=["secretsmanager:GetSecretValue"],
                resources=resources,
            )
        ]

    def _secret_arn(self, secret: str) -> str:
        """A full secret ARN as given; a name becomes NAME-?????? (Secrets Manager's suffix)."""
        if secret.startswith("arn:"):
            return secret
        return Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{secret}-??????",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _warn(self, check: str, message: str) -> None:
        Annotations.of(self).add_warning_v2(f"certplane:{check}", message)
