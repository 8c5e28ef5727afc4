"""The AWS Private CA engine: request shapes, waiting, backoff, revocation, modes, content.

moto's ACM PCA ignores templates, ApiPassthrough and Validity, so it proves only plumbing
(the last tests). Everything PCA is asked for is asserted on the request itself, recorded
through real botocore clients (their parameter validation is botocore's): a botocore Stubber
for the error paths, and `FakePCA` — event hooks answering the way the PCA template
definitions say PCA answers — for the paths where the certificate depends on the request.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import ipaddress
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbridge import PermanentEngineError, SigningRequest, TransientEngineError
from certbridge.engines.pca import (
    BLANK_CRITICAL_BC_TEMPLATE,
    BLANK_TEMPLATE,
    SUBJECT_FIELDS,
    PrivateCAEngine,
    api_passthrough,
    asn1_subject,
    idempotency_token,
    serial_text,
    template_arn,
)
from certplane.config import Settings
from certplane.lifecycle import IssueRequest, RenewRequest
from certplane.policy import plan_certificate
from tests.engine_factories import pca_moto

REGION = "us-east-1"
CA_ID = "11111111-2222-3333-4444-555555555555"
CA_ARN = f"arn:aws:acm-pca:{REGION}:123456789012:certificate-authority/{CA_ID}"
CERT_ARN = f"{CA_ARN}/certificate/0123456789abcdef0123456789abcdef"
SERIAL = 0x7A3F_0000_0000_0000_0000_0000_0000_0001  # 16 octets, as profiles allocate
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DS_KE = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
RSA_KEY = rsa.generate_private_key(65537, 2048)  # once: RSA generation is slow
DS = x509.KeyUsage(True, False, False, False, False, False, False, False, False)


# -- a test CA hierarchy and requests as policy makes them ------------------------------------


@dataclasses.dataclass(frozen=True)
class FakeCA:
    """An EC P-256 issuing CA under a root, standing in for a PCA CA and its parents."""

    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, x509.Certificate]

    @property
    def certificate_pem(self) -> str:
        return self.chain[0].public_bytes(serialization.Encoding.PEM).decode()

    @property
    def parents_pem(self) -> str:
        return self.chain[1].public_bytes(serialization.Encoding.PEM).decode()


def make_test_ca() -> FakeCA:
    root_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PCA test root")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PCA test issuing")])
    days = datetime.timedelta(days=3650)
    root = pca_moto.ca_builder(
        root_name, root_key.public_key(), root_name, root_key.public_key(), days, None
    ).sign(root_key, hashes.SHA256())
    issuing = pca_moto.ca_builder(
        name, key.public_key(), root_name, root_key.public_key(), days, 0
    ).sign(root_key, hashes.SHA256())
    return FakeCA(key=key, chain=(issuing, root))


@pytest.fixture(scope="module")
def ca() -> FakeCA:
    return make_test_ca()


def planned_request(
    profile_name: str = "device",
    key: Any = None,
    common_name: str = "device-0001",
    days: int = 30,
    ca_not_after: datetime.datetime = NOW + datetime.timedelta(days=3000),
) -> SigningRequest:
    """A request exactly as certplane's policy plans it, with the CSR the device sent."""
    profile = Settings.load().tenant_profile("default", profile_name)
    assert profile is not None
    key = key or ec.generate_private_key(ec.SECP256R1())
    plan = plan_certificate(
        profile,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        requested_sans=[],
        public_key=key.public_key(),
        ca_not_after=ca_not_after,
        requested_days=days,
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(plan.subject)
    if plan.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(plan.sans)), False)
    csr = builder.sign(key, hashes.SHA256())
    return SigningRequest(
        serial_number=SERIAL,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
        csr_der=csr.public_bytes(serialization.Encoding.DER),
    )


def bare_request(*extensions: tuple[x509.ExtensionType, bool]) -> SigningRequest:
    """A request carrying just the given extensions (for template selection)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningRequest(
        serial_number=SERIAL,
        public_key=key.public_key(),
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]),
        not_before=NOW,
        not_after=NOW + datetime.timedelta(days=1),
        extensions=tuple(x509.Extension(v.oid, critical, v) for v, critical in extensions),
    )


# -- PCA as its template definitions describe it ----------------------------------------------

_NAMED_EKUS = {
    "EndEntityServerAuthCertificate_APIPassthrough": [ExtendedKeyUsageOID.SERVER_AUTH],
    "EndEntityClientAuthCertificate_APIPassthrough": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "EndEntityCertificate_APIPassthrough": [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ],
}
_EKU_TYPES = {
    "SERVER_AUTH": ExtendedKeyUsageOID.SERVER_AUTH,
    "CLIENT_AUTH": ExtendedKeyUsageOID.CLIENT_AUTH,
    "CODE_SIGNING": ExtendedKeyUsageOID.CODE_SIGNING,
}


def _name(subject: dict[str, Any] | None) -> x509.Name | None:
    if subject is None:
        return None
    if "CustomAttributes" in subject:
        return x509.Name(
            [
                x509.NameAttribute(x509.ObjectIdentifier(a["ObjectIdentifier"]), a["Value"])
                for a in subject["CustomAttributes"]
            ]
        )
    return x509.Name(
        [
            x509.NameAttribute(oid, subject[field])
            for oid, field in SUBJECT_FIELDS
            if field in subject
        ]
    )


def _general_name(entry: dict[str, str]) -> x509.GeneralName:
    if "DnsName" in entry:
        return x509.DNSName(entry["DnsName"])
    if "IpAddress" in entry:
        return x509.IPAddress(ipaddress.ip_address(entry["IpAddress"]))
    if "UniformResourceIdentifier" in entry:
        return x509.UniformResourceIdentifier(entry["UniformResourceIdentifier"])
    return x509.RFC822Name(entry["Rfc822Name"])


def faithful_certificate(params: dict[str, Any], ca: FakeCA) -> x509.Certificate:
    """What PCA signs for these IssueCertificate parameters (template definitions, order of
    operations: template > ApiPassthrough > CSR)."""
    csr = x509.load_pem_x509_csr(params["Csr"])
    template = params["TemplateArn"].split("/")[-2]
    passthrough = params.get("ApiPassthrough", {})
    extensions = passthrough.get("Extensions", {})
    subject = _name(passthrough.get("Subject")) or csr.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.chain[0].subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(
            datetime.datetime.fromtimestamp(params["ValidityNotBefore"]["Value"], datetime.UTC)
        )
        .not_valid_after(datetime.datetime.fromtimestamp(params["Validity"]["Value"], datetime.UTC))
        .add_extension(
            x509.BasicConstraints(ca=False, path_length=None),
            critical="CriticalBasicConstraints" in template,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    if template in _NAMED_EKUS:
        builder = builder.add_extension(DS_KE, critical=True).add_extension(
            x509.ExtendedKeyUsage(_NAMED_EKUS[template]), critical=False
        )
    else:
        if "KeyUsage" in extensions:
            flags = extensions["KeyUsage"]
            builder = builder.add_extension(
                x509.KeyUsage(
                    flags.get("DigitalSignature", False),
                    flags.get("NonRepudiation", False),
                    flags.get("KeyEncipherment", False),
                    flags.get("DataEncipherment", False),
                    flags.get("KeyAgreement", False),
                    flags.get("KeyCertSign", False),
                    flags.get("CRLSign", False),
                    False,
                    False,
                ),
                critical=True,
            )
        if "ExtendedKeyUsage" in extensions:
            usages = [
                _EKU_TYPES[u["ExtendedKeyUsageType"]]
                if "ExtendedKeyUsageType" in u
                else x509.ObjectIdentifier(u["ExtendedKeyUsageObjectIdentifier"])
                for u in extensions["ExtendedKeyUsage"]
            ]
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if "SubjectAlternativeNames" in extensions:
        names = [_general_name(entry) for entry in extensions["SubjectAlternativeNames"]]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=len(subject) == 0
        )
    return builder.sign(ca.key, hashes.SHA256())


def _response(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": status})
    return AWSResponse(None, status, {}, None), parsed


def describe_response(
    key_algorithm: str = "EC_prime256v1",
    signing_algorithm: str = "SHA256WITHECDSA",
    usage_mode: str = "GENERAL_PURPOSE",
    status: str = "ACTIVE",
) -> dict[str, Any]:
    return {
        "CertificateAuthority": {
            "Arn": CA_ARN,
            "Type": "SUBORDINATE",
            "Status": status,
            "UsageMode": usage_mode,
            "CertificateAuthorityConfiguration": {
                "KeyAlgorithm": key_algorithm,
                "SigningAlgorithm": signing_algorithm,
                "Subject": {"CommonName": "PCA test issuing"},
            },
        }
    }


class FakePCA:
    """A private CA behind a real botocore client: botocore validates every request against
    the service model (as it would before sending it to AWS); these hooks record it and
    answer. `mint` turns IssueCertificate parameters into the certificate PCA would sign."""

    def __init__(
        self,
        ca: FakeCA,
        in_progress: int = 0,
        mint: Callable[[dict[str, Any], FakeCA], x509.Certificate] = faithful_certificate,
        **describe: str,
    ) -> None:
        self.ca = ca
        self.in_progress = in_progress
        self.mint = mint
        self.describe = describe_response(**describe)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.issued: dict[str, x509.Certificate] = {}
        self.client = boto3.client("acm-pca", region_name=REGION)
        self.client.meta.events.register("before-parameter-build.acm-pca.*", self._record)
        self.client.meta.events.register("before-call.acm-pca.*", self._answer)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def _answer(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = self.calls[-1][1]
        if model.name == "DescribeCertificateAuthority":
            return _response(200, copy.deepcopy(self.describe))
        if model.name == "GetCertificateAuthorityCertificate":
            return _response(
                200,
                {"Certificate": self.ca.certificate_pem, "CertificateChain": self.ca.parents_pem},
            )
        if model.name == "IssueCertificate":
            arn = f"{CA_ARN}/certificate/{len(self.issued):032x}"
            self.issued[arn] = self.mint(params, self.ca)
            return _response(200, {"CertificateArn": arn})
        if model.name == "GetCertificate":
            if self.in_progress:
                self.in_progress -= 1
                error = {"Code": "RequestInProgressException", "Message": "not yet"}
                return _response(400, {"Error": error})
            certificate = self.issued[params["CertificateArn"]]
            pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
            return _response(200, {"Certificate": pem, "CertificateChain": self.ca.certificate_pem})
        if model.name == "RevokeCertificate":
            return _response(200, {})
        raise AssertionError(f"unexpected {model.name}")


class Sleeps(list[float]):
    """An injectable sleep that only records."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def engine_for(client: Any, **options: Any) -> tuple[PrivateCAEngine, Sleeps]:
    sleeps = Sleeps()
    options.setdefault("poll_interval_seconds", 0.5)
    engine = PrivateCAEngine("pca-test", ca_arn=CA_ARN, client=client, sleep=sleeps, **options)
    return engine, sleeps


# -- what is asked of PCA: templates and ApiPassthrough --------------------------------------


SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
CLIENT_EKU = x509.ExtendedKeyUsage([CLIENT])


@pytest.mark.parametrize(
    ("extensions", "template"),
    [
        # RSA TLS key usage and no critical basic constraints: the end-entity templates
        # reproduce exactly that, so they are chosen by EKU.
        (
            [(DS_KE, True), (x509.ExtendedKeyUsage([SERVER]), False)],
            "EndEntityServerAuthCertificate_APIPassthrough/V1",
        ),
        (
            [(DS_KE, True), (x509.ExtendedKeyUsage([CLIENT]), False)],
            "EndEntityClientAuthCertificate_APIPassthrough/V1",
        ),
        (
            [(DS_KE, True), (x509.ExtendedKeyUsage([CLIENT, SERVER]), False)],
            "EndEntityCertificate_APIPassthrough/V1",
        ),
        (
            [
                (DS_KE, True),
                (x509.BasicConstraints(False, None), False),
                (x509.ExtendedKeyUsage([CLIENT]), False),
            ],
            "EndEntityClientAuthCertificate_APIPassthrough/V1",
        ),
        # An EC device key is digitalSignature only: the end-entity templates would add
        # keyEncipherment, so the Blank template takes key usage and EKU from the passthrough.
        ([(DS, True), (x509.ExtendedKeyUsage([CLIENT]), False)], BLANK_TEMPLATE),
        (
            [(DS_KE, True), (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)],
            BLANK_TEMPLATE,
        ),
        # certplane profiles mark CA:FALSE critical; only the Blank family can.
        (
            [
                (x509.BasicConstraints(False, None), True),
                (DS_KE, True),
                (x509.ExtendedKeyUsage([SERVER]), False),
            ],
            BLANK_CRITICAL_BC_TEMPLATE,
        ),
    ],
)
def test_template_by_eku_and_key_usage(extensions, template) -> None:
    assert template_arn(bare_request(*extensions)) == f"arn:aws:acm-pca:::template/{template}"


def test_template_arn_follows_the_ca_partition() -> None:
    request = bare_request((DS, True))
    assert template_arn(request, "aws-us-gov").startswith("arn:aws-us-gov:acm-pca:::template/")


@pytest.mark.parametrize("mode", ["GENERAL_PURPOSE", "SHORT_LIVED_CERTIFICATE"])
@pytest.mark.parametrize(
    ("profile", "key", "template"),
    [
        ("device", ec.generate_private_key(ec.SECP256R1()), BLANK_CRITICAL_BC_TEMPLATE),
        ("server", RSA_KEY, BLANK_CRITICAL_BC_TEMPLATE),
    ],
)
def test_the_mode_does_not_change_the_template(ca, mode, profile, key, template) -> None:
    """PCA has no short-lived templates: the mode limits validity, the template is the same."""
    pca = FakePCA(ca, usage_mode=mode)
    engine, _ = engine_for(pca.client, mode=mode)
    engine.issue(planned_request(profile, key, "api.example.com", days=5))
    (issue,) = pca.requests("IssueCertificate")
    assert issue["TemplateArn"] == f"arn:aws:acm-pca:::template/{template}"


def test_api_passthrough_carries_what_policy_decided() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "gw-7"),
        ]
    )
    custom_oid = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
    request = dataclasses.replace(
        bare_request(
            (DS, True),
            (x509.ExtendedKeyUsage([CLIENT, x509.ObjectIdentifier("1.3.6.1.4.1.99999.2")]), False),
            (
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("gw-7.devices.internal"),
                        x509.UniformResourceIdentifier("urn:uuid:5f1c"),
                        x509.RFC822Name("ops@example.com"),
                        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
                    ]
                ),
                False,
            ),
            (x509.SubjectKeyIdentifier(b"\x01" * 8), False),  # PCA derives its own SKI
            (x509.UnrecognizedExtension(custom_oid, b"\x05\x00"), False),
        ),
        subject=subject,
    )
    assert api_passthrough(request) == {
        "Subject": {"Country": "US", "Organization": "Example", "CommonName": "gw-7"},
        "Extensions": {
            "KeyUsage": {
                "DigitalSignature": True,
                "NonRepudiation": False,
                "KeyEncipherment": False,
                "DataEncipherment": False,
                "KeyAgreement": False,
                "KeyCertSign": False,
                "CRLSign": False,
            },
            "ExtendedKeyUsage": [
                {"ExtendedKeyUsageType": "CLIENT_AUTH"},
                {"ExtendedKeyUsageObjectIdentifier": "1.3.6.1.4.1.99999.2"},
            ],
            "SubjectAlternativeNames": [
                {"DnsName": "gw-7.devices.internal"},
                {"UniformResourceIdentifier": "urn:uuid:5f1c"},
                {"Rfc822Name": "ops@example.com"},
                {"IpAddress": "10.1.2.3"},
            ],
            "CustomExtensions": [
                {
                    "ObjectIdentifier": "1.3.6.1.4.1.99999.1",
                    "Value": base64.b64encode(b"\x05\x00").decode(),
                    "Critical": False,
                }
            ],
        },
    }


def test_a_subject_pca_would_reorder_goes_as_custom_attributes() -> None:
    cn_first = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "gw-7"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        ]
    )
    assert asn1_subject(cn_first) == {
        "CustomAttributes": [
            {"ObjectIdentifier": "2.5.4.3", "Value": "gw-7"},
            {"ObjectIdentifier": "2.5.4.10", "Value": "Example"},
        ]
    }
    two_ous = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v) for v in "ab"])
    assert "CustomAttributes" in asn1_subject(two_ous)
    multi_valued = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "a"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b"),
                ]
            )
        ]
    )
    with pytest.raises(PermanentEngineError):
        asn1_subject(multi_valued)


def test_serials_and_idempotency_tokens() -> None:
    assert serial_text(0x5EED_0000_0000_0001) == "5e:ed:00:00:00:00:00:01"
    assert serial_text(0x8F) == "8f"  # magnitude octets, as openssl prints them
    assert idempotency_token(SERIAL) == f"{SERIAL:x}"
    long_serial = int("7f" * 20, 16)  # 20 octets: 40 hex digits, over PCA's 36
    token = idempotency_token(long_serial)
    assert len(token) == 36 and token == idempotency_token(long_serial)


# -- issuing through PCA ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "key", "common_name", "template"),
    [
        (
            "device",
            ec.generate_private_key(ec.SECP256R1()),
            "device-0001",
            BLANK_CRITICAL_BC_TEMPLATE,
        ),
        (
            "server",
            RSA_KEY,
            "api.example.com",
            BLANK_CRITICAL_BC_TEMPLATE,
        ),
        # no basic constraints and a truncated-SHA-256 key id (PCA derives its own SKI)
        ("compact", ec.generate_private_key(ec.SECP256R1()), "d1", BLANK_TEMPLATE),
    ],
)
def test_issue_sends_the_plan_and_checks_what_comes_back(
    ca, profile, key, common_name, template
) -> None:
    pca = FakePCA(ca, in_progress=2)
    engine, sleeps = engine_for(pca.client)
    request = planned_request(profile, key, common_name)
    issued = engine.issue(request)

    (issue,) = pca.requests("IssueCertificate")
    assert issue == {
        "CertificateAuthorityArn": CA_ARN,
        "Csr": x509.load_der_x509_csr(request.csr_der).public_bytes(serialization.Encoding.PEM),
        "SigningAlgorithm": "SHA256WITHECDSA",  # from DescribeCertificateAuthority
        "TemplateArn": f"arn:aws:acm-pca:::template/{template}",
        "ApiPassthrough": api_passthrough(request),
        "Validity": {"Type": "ABSOLUTE", "Value": int(request.not_after.timestamp())},
        "ValidityNotBefore": {"Type": "ABSOLUTE", "Value": int(request.not_before.timestamp())},
        "IdempotencyToken": f"{SERIAL:x}",
    }
    assert issue["ApiPassthrough"]["Subject"] == {"CommonName": common_name}
    # the waiter: GetCertificate until it stops answering RequestInProgressException
    assert len(pca.requests("GetCertificate")) == 3 and sleeps == [0.5, 0.5]

    certificate = issued.certificate
    assert issued.chain == ca.chain == engine.chain()
    certificate.verify_directly_issued_by(ca.chain[0])
    assert certificate.public_key() == request.public_key
    assert certificate.subject == request.subject
    assert certificate.not_valid_after_utc == request.not_after
    assert certificate.serial_number != request.serial_number  # PCA picks serials
    capabilities = engine.capabilities()
    assert capabilities.signing_algorithm == certificate.signature_algorithm_oid._name
    assert capabilities.signing_algorithm == "ecdsa-with-SHA256"
    assert capabilities.assigns_serial_numbers is True
    assert capabilities.max_requests_per_second == 25.0
    assert capabilities.supports_revocation and not capabilities.supports_crl_signing
    assert capabilities.subject_key_algorithms == ("P-256", "P-384", "P-521", "RSA")
    # the CA is described once and cached
    assert len(pca.requests("DescribeCertificateAuthority")) == 1


def test_the_waiter_gives_up(ca) -> None:
    pca = FakePCA(ca, in_progress=10**6)
    ticks = iter(range(10**6))
    engine, sleeps = engine_for(pca.client, max_wait_seconds=5, clock=lambda: float(next(ticks)))
    with pytest.raises(TransientEngineError, match="still being issued"):
        engine.issue(planned_request())
    assert sleeps and set(sleeps) == {0.5}


def _ignores_validity(params: dict[str, Any], ca: FakeCA) -> x509.Certificate:
    params = {
        **params,
        "Validity": {"Type": "ABSOLUTE", "Value": params["Validity"]["Value"] + 86400},
    }
    return faithful_certificate(params, ca)


def _blank_key_usage(params: dict[str, Any], ca: FakeCA) -> x509.Certificate:
    params = {
        **params,
        "TemplateArn": template_arn(bare_request((DS_KE, True), (CLIENT_EKU, False))),
    }
    return faithful_certificate(params, ca)


def _other_signer(params: dict[str, Any], ca: FakeCA) -> x509.Certificate:
    return faithful_certificate(params, make_test_ca())


@pytest.mark.parametrize(
    ("mint", "complaint"),
    [
        (_ignores_validity, "notAfter"),
        (_blank_key_usage, "keyUsage"),
        (_other_signer, "does not verify"),
    ],
)
def test_a_certificate_policy_did_not_approve_is_not_handed_out(ca, mint, complaint) -> None:
    pca = FakePCA(ca, mint=mint)
    engine, _ = engine_for(pca.client)
    with pytest.raises(PermanentEngineError, match=complaint) as caught:
        engine.issue(planned_request())
    assert "certificate/" in str(caught.value) and "serial" in str(caught.value)


def test_requests_pca_cannot_sign_are_refused_before_calling_it(ca) -> None:
    pca = FakePCA(ca)
    engine, _ = engine_for(pca.client)
    request = planned_request()
    with pytest.raises(PermanentEngineError, match="only CSRs"):
        engine.issue(dataclasses.replace(request, csr_der=None))
    other = planned_request()
    with pytest.raises(PermanentEngineError, match="another key"):
        engine.issue(dataclasses.replace(request, csr_der=other.csr_der))
    assert pca.requests("IssueCertificate") == []


def test_short_lived_mode_caps_validity_at_seven_days(ca) -> None:
    """Refused, not clamped: policy decided notAfter, and the engine signs that or nothing."""
    pca = FakePCA(ca, usage_mode="SHORT_LIVED_CERTIFICATE")
    engine, _ = engine_for(pca.client, mode="SHORT_LIVED_CERTIFICATE")
    capabilities = engine.capabilities()
    assert capabilities.max_validity == datetime.timedelta(days=7)
    assert capabilities.supports_revocation is False
    with pytest.raises(PermanentEngineError, match="at most 7 days"):
        engine.issue(planned_request(days=8))
    assert pca.requests("IssueCertificate") == []
    week = planned_request(days=7)
    issued = engine.issue(week)
    assert issued.certificate.not_valid_after_utc == week.not_after
    # PCA counts the 7 days from issuance (its own default notBefore is 60 minutes back), so
    # the profile's backdate does not count against them
    assert week.not_after - week.not_before == datetime.timedelta(days=7, seconds=300)
    with pytest.raises(PermanentEngineError, match="revoked by expiry"):
        engine.revoke(issued.certificate.serial_number, x509.ReasonFlags.superseded, NOW)
    assert pca.requests("RevokeCertificate") == []


def test_a_ca_unlike_its_configuration_is_unusable(ca) -> None:
    engine, _ = engine_for(
        FakePCA(ca, usage_mode="SHORT_LIVED_CERTIFICATE").client, mode="GENERAL_PURPOSE"
    )
    with pytest.raises(TransientEngineError, match="configured as GENERAL_PURPOSE"):
        engine.capabilities()
    engine, _ = engine_for(FakePCA(ca).client, signing_algorithm="SHA256WITHRSA")
    with pytest.raises(TransientEngineError, match="EC_prime256v1"):
        engine.capabilities()
    disabled = FakePCA(ca, status="DISABLED")
    engine, _ = engine_for(disabled.client)
    with pytest.raises(TransientEngineError, match="DISABLED"):
        engine.issue(planned_request())
    assert disabled.requests("IssueCertificate") == []


def test_construction_checks_options_without_calling_aws() -> None:
    with pytest.raises(ValueError, match="not a private CA ARN"):
        PrivateCAEngine("pca", ca_arn="arn:aws:kms:us-east-1:123456789012:key/x", client=object())
    with pytest.raises(ValueError, match="mode"):
        PrivateCAEngine("pca", ca_arn=CA_ARN, mode="CHEAP", client=object())
    with pytest.raises(ValueError, match="signing_algorithm"):
        PrivateCAEngine("pca", ca_arn=CA_ARN, signing_algorithm="MD5WITHRSA", client=object())


# -- throttling and errors (botocore Stubber) -------------------------------------------------


@pytest.fixture
def stubbed(ca) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("acm-pca", region_name=REGION)
    with Stubber(client) as stubber:
        stubber.add_response("describe_certificate_authority", describe_response())
        stubber.add_response(
            "get_certificate_authority_certificate",
            {"Certificate": ca.certificate_pem, "CertificateChain": ca.parents_pem},
        )
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_throttling_is_retried_with_backoff_then_transient(stubbed) -> None:
    client, stubber = stubbed
    engine, sleeps = engine_for(
        client,
        max_attempts=4,
        backoff_base_seconds=0.1,
        backoff_max_seconds=0.3,
        jitter=lambda: 1.0,
    )
    for _ in range(4):
        stubber.add_client_error("issue_certificate", "ThrottlingException", "Rate exceeded")
    with pytest.raises(TransientEngineError, match="4 times: ThrottlingException"):
        engine.issue(planned_request())
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])  # exponential, capped, no sleep after the last


def test_the_backoff_is_jittered() -> None:
    from certbridge.engines.pca import Backoff

    backoff = Backoff(max_attempts=5, base_seconds=1.0, max_seconds=30.0)
    assert [backoff.delay(n, 0.0) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff.delay(n, 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]


def test_a_throttled_issue_succeeds_with_the_same_idempotency_token(ca, stubbed) -> None:
    client, stubber = stubbed
    engine, sleeps = engine_for(client, backoff_base_seconds=0.1, jitter=lambda: 0.0)
    request = planned_request()
    engine.capabilities()  # consumes the describe and CA certificate responses
    params = engine.issue_certificate_params(request)
    certificate = faithful_certificate(params, ca)
    stubber.add_client_error("issue_certificate", "ThrottlingException", expected_params=params)
    stubber.add_client_error(
        "issue_certificate", "InternalFailure", http_status_code=500, expected_params=params
    )
    stubber.add_client_error("issue_certificate", "TooManyRequests", http_status_code=429)
    stubber.add_response("issue_certificate", {"CertificateArn": CERT_ARN}, params)
    stubber.add_client_error("get_certificate", "ThrottlingException")
    stubber.add_client_error("get_certificate", "RequestInProgressException")
    stubber.add_response(
        "get_certificate",
        {
            "Certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "CertificateChain": ca.certificate_pem,
        },
        {"CertificateAuthorityArn": CA_ARN, "CertificateArn": CERT_ARN},
    )
    assert engine.issue(request).certificate == certificate
    # three backoffs for IssueCertificate, one for GetCertificate, one poll interval
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.05, 0.5])


def test_connection_errors_are_retried_then_transient(stubbed) -> None:
    client, _ = stubbed
    attempts = []

    def unreachable(**_: Any) -> None:
        attempts.append(1)
        raise EndpointConnectionError(endpoint_url="https://acm-pca.us-east-1.amazonaws.com")

    client.meta.events.register_first("provide-client-params.acm-pca.IssueCertificate", unreachable)
    engine, sleeps = engine_for(client, max_attempts=3)
    with pytest.raises(TransientEngineError, match="3 times: Could not connect"):
        engine.issue(planned_request())
    assert len(attempts) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "code", ["ValidationException", "MalformedCSRException", "InvalidArgsException"]
)
def test_refusals_are_permanent_and_not_retried(stubbed, code) -> None:
    client, stubber = stubbed
    stubber.add_client_error("issue_certificate", code, "no")
    engine, sleeps = engine_for(client)
    with pytest.raises(PermanentEngineError, match=code):
        engine.issue(planned_request())
    assert sleeps == []


@pytest.mark.parametrize(
    "code",
    [
        "InvalidStateException",
        "AccessDeniedException",
        "LimitExceededException",
        "ResourceNotFoundException",
    ],
)
def test_a_ca_that_cannot_sign_fails_over_at_once(stubbed, code) -> None:
    client, stubber = stubbed
    stubber.add_client_error("issue_certificate", code, "no")
    engine, sleeps = engine_for(client)
    with pytest.raises(TransientEngineError, match=code):
        engine.issue(planned_request())
    assert sleeps == []


# -- revocation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "pca_reason"),
    [
        (x509.ReasonFlags.unspecified, "UNSPECIFIED"),
        (x509.ReasonFlags.key_compromise, "KEY_COMPROMISE"),
        (x509.ReasonFlags.ca_compromise, "CERTIFICATE_AUTHORITY_COMPROMISE"),
        (x509.ReasonFlags.affiliation_changed, "AFFILIATION_CHANGED"),
        (x509.ReasonFlags.superseded, "SUPERSEDED"),
        (x509.ReasonFlags.cessation_of_operation, "CESSATION_OF_OPERATION"),
        (x509.ReasonFlags.privilege_withdrawn, "PRIVILEGE_WITHDRAWN"),
        (x509.ReasonFlags.aa_compromise, "A_A_COMPROMISE"),
    ],
)
def test_revoke_request_shape(stubbed, reason, pca_reason) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "revoke_certificate",
        {},
        {
            "CertificateAuthorityArn": CA_ARN,
            "CertificateSerial": "7a:3f:00:00:00:00:00:00:00:00:00:00:00:00:00:01",
            "RevocationReason": pca_reason,
        },
    )
    engine, _ = engine_for(client)
    engine.revoke(SERIAL, reason, NOW)


def test_revoking_twice_is_fine_and_unknown_reasons_are_refused(stubbed) -> None:
    client, stubber = stubbed
    stubber.add_client_error("revoke_certificate", "RequestAlreadyProcessedException")
    engine, _ = engine_for(client)
    engine.revoke(SERIAL, x509.ReasonFlags.key_compromise, NOW)
    for reason in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl):
        with pytest.raises(PermanentEngineError, match="no revocation reason"):
            engine.revoke(SERIAL, reason, NOW)


# -- moto: the plumbing, end to end -----------------------------------------------------------


@pytest.fixture
def moto_engine(aws, tmp_path) -> PrivateCAEngine:
    return pca_moto.make_engine(tmp_path)


def test_the_moto_certificate_verifies_against_the_engine_chain(moto_engine, tmp_path) -> None:
    request = planned_request(ca_not_after=moto_engine.capabilities().ca_not_after)
    issued = moto_engine.issue(request)
    chain = moto_engine.chain()
    assert issued.chain == chain and len(chain) == 2
    issued.certificate.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    assert issued.certificate.public_key() == request.public_key
    files = {}
    labelled = (("leaf", issued.certificate), ("issuing", chain[0]), ("root", chain[1]))
    for label, certificate in labelled:
        files[label] = tmp_path / f"{label}.pem"
        files[label].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            files["root"],
            "-untrusted",
            files["issuing"],
            files["leaf"],
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    moto_engine.revoke(issued.certificate.serial_number, x509.ReasonFlags.superseded, NOW)


def test_the_lifecycle_records_pca_certificates_under_the_serial_pca_chose(
    aws, make_lifecycle, tmp_path, events
) -> None:
    """PCA picks serials: the intent record (keyed by the allocated serial) is replaced, in the
    transaction that marks it ISSUED, by a record keyed by the serial PCA issued."""
    engine = pca_moto.make_engine(tmp_path)
    revocations: list[dict] = []
    engine._client.meta.events.register(
        "provide-client-params.acm-pca.RevokeCertificate",
        lambda params, **_: revocations.append(dict(params)),
    )
    settings = Settings.from_toml(
        f"""
[[tenants]]
id = "default"
profiles = ["device"]

[[cas]]
id = "pca"
engine = "pca"
options = {{ ca_arn = "{engine._ca_arn}" }}

[[profiles]]
name = "device"
max_validity_days = 30
default_validity_days = 7
route = ["pca"]
"""
    )
    lifecycle = make_lifecycle(settings, {"pca": engine})

    def csr_for(key: ec.EllipticCurvePrivateKey) -> str:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")]))
            .sign(key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    record = lifecycle.issue(
        IssueRequest(
            tenant="default",
            profile="device",
            csr=csr_for(ec.generate_private_key(ec.SECP256R1())),
            requester="alice",
        )
    )
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    assert record.status == "ISSUED"
    assert int(record.serial, 16) == certificate.serial_number
    assert record.allocated_serial and record.allocated_serial != record.serial
    items = aws.dynamodb.scan(TableName="certplane-inventory")["Items"]
    assert [(item["serial"]["S"], item["status"]["S"]) for item in items] == [
        (record.serial, "ISSUED")
    ]
    assert lifecycle.get("default", record.certificate_id).pk == record.pk

    renewed = lifecycle.renew(
        RenewRequest(
            tenant="default",
            reference=record.serial,
            requester="alice",
            csr=csr_for(ec.generate_private_key(ec.SECP256R1())),
        )
    )
    assert lifecycle.get("default", record.serial).status == "SUPERSEDED"
    assert renewed.renewed_from == record.pk
    lifecycle.revoke("default", renewed.serial, "keyCompromise", "alice")
    assert revocations and revocations[-1]["RevocationReason"] == "KEY_COMPROMISE"
    assert revocations[-1]["CertificateSerial"].replace(":", "").lstrip("0") == format(
        x509.load_pem_x509_certificate(renewed.certificate_pem.encode()).serial_number, "x"
    )
    assert [detail_type for detail_type, _ in events()] == [
        "Certificate Issued",
        "Certificate Renewed",
        "Certificate Revoked",
    ]


def test_the_runtime_builds_it_from_toml_options(aws) -> None:
    from certplane.config import CARegistration
    from certplane.runtime import create_engine

    registration = CARegistration(
        id="pca",
        engine="pca",
        options={"ca_arn": CA_ARN, "mode": "SHORT_LIVED_CERTIFICATE", "max_attempts": 3},
    )
    engine = create_engine(registration, Path("/nonexistent"))
    assert isinstance(engine, PrivateCAEngine) and engine.engine_id == "pca"
    assert engine._client.meta.region_name == REGION
