"""The enrollment API's mutual-TLS custom domain (context `enrollment_domain_*`).

With the context: a regional DomainName with TLS 1.2, the truststore from S3 (and its version),
a base path mapping to the enrollment API's stage, the execute-api endpoint disabled and the
DNS target as an output. Without it: no domain and the default endpoint stays on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import create_app, deployed_config
from stacks.enrollment_stack import EnrollmentStack
from stacks.events_stack import EventsStack
from stacks.inventory_stack import InventoryStack

DOMAIN = "enroll.devices.example.com"
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
TRUSTSTORE = "s3://example-pki-truststores/certplane/truststore.pem"
CONTEXT = {
    "enrollment_domain_name": DOMAIN,
    "enrollment_certificate_arn": CERTIFICATE,
    "enrollment_truststore_uri": TRUSTSTORE,
    "enrollment_truststore_version": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
}


def synth(tmp_path: Path, **context: Any) -> Template:
    app = create_app(outdir=str(tmp_path), context=context)
    env = cdk.Environment(account="123456789012", region="eu-west-1")
    inventory = InventoryStack(app, "Inventory", env=env)
    events = EventsStack(app, "Events", env=env)
    stack = EnrollmentStack(
        app,
        "Enrollment",
        tables=inventory.tables,
        bus=events.bus,
        config=deployed_config(app),
        env=env,
    )
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def with_domain(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return synth(tmp_path_factory.mktemp("domain"), **CONTEXT)


@pytest.fixture(scope="module")
def without_domain(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return synth(tmp_path_factory.mktemp("plain"))


def test_mtls_domain_with_truststore_and_tls12(with_domain: Template) -> None:
    (domain,) = with_domain.find_resources("AWS::ApiGateway::DomainName").values()
    props = domain["Properties"]
    assert props["DomainName"] == DOMAIN
    assert props["RegionalCertificateArn"] == CERTIFICATE
    assert props["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert props["SecurityPolicy"] == "TLS_1_2"
    assert props["MutualTlsAuthentication"] == {
        "TruststoreUri": TRUSTSTORE,
        "TruststoreVersion": CONTEXT["enrollment_truststore_version"],
    }


def test_domain_maps_to_the_enrollment_api_which_has_no_default_endpoint(
    with_domain: Template,
) -> None:
    ((api_id, api),) = with_domain.find_resources("AWS::ApiGateway::RestApi").items()
    assert api["Properties"]["DisableExecuteApiEndpoint"] is True
    (domain_id,) = with_domain.find_resources("AWS::ApiGateway::DomainName")
    (stage_id,) = with_domain.find_resources("AWS::ApiGateway::Stage")
    (mapping,) = with_domain.find_resources("AWS::ApiGateway::BasePathMapping").values()
    assert mapping["Properties"]["DomainName"] == {"Ref": domain_id}
    assert mapping["Properties"]["RestApiId"] == {"Ref": api_id}
    assert mapping["Properties"]["Stage"] == {"Ref": stage_id}
    assert "BasePath" not in mapping["Properties"]  # the whole domain is the enrollment API
    outputs = with_domain.to_json()["Outputs"]
    assert outputs["EnrollmentDomainTarget"]["Value"] == {
        "Fn::GetAtt": [domain_id, "RegionalDomainName"]
    }
    assert outputs["EnrollmentDomainZone"]["Value"] == {
        "Fn::GetAtt": [domain_id, "RegionalHostedZoneId"]
    }


def test_no_domain_without_context(without_domain: Template) -> None:
    assert without_domain.find_resources("AWS::ApiGateway::DomainName") == {}
    assert without_domain.find_resources("AWS::ApiGateway::BasePathMapping") == {}
    (api,) = without_domain.find_resources("AWS::ApiGateway::RestApi").values()
    assert api["Properties"].get("DisableExecuteApiEndpoint") in (None, False)


@pytest.mark.parametrize(
    "context",
    [
        {"enrollment_domain_name": DOMAIN},  # no certificate, no truststore
        {**CONTEXT, "enrollment_truststore_uri": "https://bucket/truststore.pem"},
        {**CONTEXT, "enrollment_certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"},
        {"enrollment_truststore_uri": TRUSTSTORE},  # domain settings without a domain
    ],
)
def test_incomplete_or_bad_context_fails_the_synth(tmp_path: Path, context: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="context"):
        synth(tmp_path, **context)
