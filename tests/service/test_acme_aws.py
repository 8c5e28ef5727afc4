"""The ACME engine's AWS back ends against moto: Route 53 for dns-01, S3 for its state,
Secrets Manager for its passphrase.

The TXT value is checked against the key authorization digest computed here from RFC 8555
§8.1/§8.4 and RFC 7638 (not with the library's helpers), and the change batches Route 53
receives are recorded through botocore's own parameter hooks.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import os
from typing import Any

import josepy as jose
import pytest
from acme import challenges, messages
from botocore.awsrequest import AWSResponse
from cryptography.hazmat.primitives.asymmetric import ec

from certbridge import PermanentEngineError, TransientEngineError
from certbridge.engines.acme_account import (
    ACCOUNT_KEY,
    AccountSetupError,
    SecretSource,
    load_or_create_account_key,
)
from certbridge.engines.acme_challenges import Dns01Solver, challenge_task
from certbridge.engines.acme_dns import CHANGE_COMMENT, Route53Provider
from certbridge.engines.acme_state import S3State, open_state

ZONE = "certplane.example.com"
PASSPHRASE = "a passphrase from Secrets Manager"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def thumbprint(key: ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace."""
    numbers = key.public_key().public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def dns01(token: bytes) -> messages.ChallengeBody:
    return messages.ChallengeBody(
        chall=challenges.DNS01(token=token),
        uri="https://acme.example/chall/1",
        status=messages.STATUS_PENDING,
    )


@pytest.fixture
def route53(aws) -> Any:
    client = aws.session.client("route53")
    client.create_hosted_zone(Name="example.com", CallerReference="parent")
    client.create_hosted_zone(
        Name=ZONE,
        CallerReference="private",
        HostedZoneConfig={"PrivateZone": True, "Comment": "the VPC's view"},
        VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"},
    )
    return client


def public_zone_id(client: Any) -> str:
    return client.create_hosted_zone(Name=ZONE, CallerReference="public")["HostedZone"]["Id"]


def records(client: Any, zone: str) -> dict[str, list[str]]:
    sets = client.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {
        s["Name"]: [r["Value"] for r in s["ResourceRecords"]] for s in sets if s["Type"] == "TXT"
    }


def test_route53_publishes_the_key_authorization_digest_then_cleans_up(route53) -> None:
    zone = public_zone_id(route53)
    sent: list[dict[str, Any]] = []
    route53.meta.events.register(
        "provide-client-params.route53.ChangeResourceRecordSets",
        lambda params, **_: sent.append(copy.deepcopy(params)),
    )
    account = ec.generate_private_key(ec.SECP256R1())
    tokens = (os.urandom(32), os.urandom(32))
    # A name and its wildcard: two authorizations, one record name.
    tasks = [
        challenge_task(f"device.{ZONE}", dns01(token), jose.JWKEC(key=account)) for token in tokens
    ]
    digests = [
        b64url(hashlib.sha256(f"{b64url(token)}.{thumbprint(account)}".encode()).digest())
        for token in tokens
    ]
    solver = Dns01Solver(Route53Provider(client=route53, poll_seconds=0.01))

    solver.present(tasks)
    name = f"_acme-challenge.device.{ZONE}."
    assert sent == [
        {
            "HostedZoneId": zone,
            "ChangeBatch": {
                "Comment": CHANGE_COMMENT,
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "TXT",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": f'"{d}"'} for d in digests],
                        },
                    }
                ],
            },
        }
    ]
    assert records(route53, zone) == {name: [f'"{d}"' for d in digests]}

    solver.cleanup(tasks)
    assert sent[1]["ChangeBatch"]["Changes"][0]["Action"] == "DELETE"
    assert (
        sent[1]["ChangeBatch"]["Changes"][0]["ResourceRecordSet"]
        == (sent[0]["ChangeBatch"]["Changes"][0]["ResourceRecordSet"])
    )
    assert records(route53, zone) == {}
    solver.cleanup(tasks)  # already gone: not an error


def test_route53_picks_the_longest_public_zone_or_the_configured_one(route53) -> None:
    zone = public_zone_id(route53)
    provider = Route53Provider(client=route53)
    assert provider.zone_for(f"_acme-challenge.a.b.{ZONE}") == zone
    parent = route53.list_hosted_zones_by_name(DNSName="example.com.")["HostedZones"][0]
    assert provider.zone_for("_acme-challenge.www.example.com") == parent["Id"]
    assert Route53Provider(client=route53, hosted_zone_id="Z0PINNED").zone_for("x.y.z") == (
        "Z0PINNED"
    )
    with pytest.raises(PermanentEngineError, match="no public Route 53 hosted zone"):
        provider.zone_for("_acme-challenge.device.example.net")


def test_route53_not_in_sync_in_time_is_transient(route53) -> None:
    public_zone_id(route53)

    def pending(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        info = {"Id": "/change/C1", "Status": "PENDING", "SubmittedAt": datetime.datetime.now()}
        return AWSResponse(None, 200, {}, None), {
            "ChangeInfo": info,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    route53.meta.events.register("before-call.route53.GetChange", pending)
    provider = Route53Provider(client=route53, wait_seconds=0.05, poll_seconds=0.01)
    with pytest.raises(TransientEngineError, match="not in sync"):
        provider.set_txt({f"_acme-challenge.slow.{ZONE}": ["v"]})


def test_route53_errors_are_transient(aws) -> None:
    provider = Route53Provider(
        client=aws.session.client("route53"), hosted_zone_id="/hostedzone/ZNOSUCHZONE"
    )
    with pytest.raises(TransientEngineError, match="change_resource_record_sets"):
        provider.set_txt({"_acme-challenge.x.example.org": ["v"]})


# -- state in S3, passphrase in Secrets Manager -------------------------------------------------


def test_s3_state_creates_once_and_reads_back(aws) -> None:
    aws.session.client("s3").create_bucket(Bucket="certplane-acme")
    state = open_state("s3://certplane-acme/engines/le/")
    assert isinstance(state, S3State) and state.location == "s3://certplane-acme/engines/le/"
    assert state.read("missing") is None
    assert state.create("blob", b"first") is True
    assert state.create("blob", b"second") is False  # If-None-Match: the first one stays
    assert state.read("blob") == b"first"
    state.write("blob", b"replaced")
    assert state.read("blob") == b"replaced"
    with pytest.raises(TransientEngineError):
        open_state("s3://no-such-bucket-here/x").read("blob")


def test_the_account_key_in_s3_is_encrypted_with_the_secret_passphrase(aws) -> None:
    aws.session.client("s3").create_bucket(Bucket="certplane-acme")
    secrets = aws.session.client("secretsmanager")
    secrets.create_secret(Name="certplane/acme/passphrase", SecretString=PASSPHRASE)
    source = SecretSource("account key passphrase", secret="certplane/acme/passphrase")
    state = open_state("s3://certplane-acme/le")

    key = load_or_create_account_key(state, source.read())
    stored = aws.session.client("s3").get_object(Bucket="certplane-acme", Key=f"le/{ACCOUNT_KEY}")
    text = stored["Body"].read().decode()
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    again = load_or_create_account_key(state, source.read())  # a second cold start
    assert again.private_numbers() == key.private_numbers()
    with pytest.raises(AccountSetupError, match="cannot decrypt"):
        load_or_create_account_key(state, "not the passphrase, but long")
    with pytest.raises(AccountSetupError, match="cannot read"):
        SecretSource("account key passphrase", secret="certplane/acme/missing").read()


def test_one_secret_source_at_most() -> None:
    with pytest.raises(ValueError, match="one source"):
        SecretSource("EAB HMAC key", env="A", file="/b")


def test_the_documented_aws_configuration_builds_without_calling_anything(aws, tmp_path) -> None:
    """The docs/engines.md example: state in S3, secrets in Secrets Manager, dns-01 through
    Route 53. Construction reads only the roots file (a cold start never fails on the CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from certbridge.engines.acme import AcmeCAEngine
    from certbridge.engines.acme_challenges import Dns01Solver
    from certplane.config import Settings
    from certplane.runtime import create_engine

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test Root X2")])
    now = datetime.datetime.now(datetime.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    roots = tmp_path / "roots.pem"
    roots.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    settings = Settings.from_toml(
        f"""
[[tenants]]
id = "default"
profiles = ["public-tls"]

[[cas]]
id = "letsencrypt"
engine = "acme"
name = "Let's Encrypt"

[cas.options]
directory_url = "https://acme-v02.api.letsencrypt.org/directory"
state = "s3://certplane-acme-state/letsencrypt"
roots_file = "{roots}"
passphrase_secret = "certplane/acme/letsencrypt/passphrase"
contact = ["mailto:pki-team@example.com"]
agree_to_terms = true
challenge = "dns-01"
dns_provider = "route53"
dns_provider_options = {{ hosted_zone_id = "Z0123456789ABCDEFGHIJ", wait_seconds = 180 }}
max_validity_days = 90
timeout_seconds = 300
max_requests_per_second = 0.02

[[profiles]]
name = "public-tls"
extended_key_usages = ["serverAuth"]
max_validity_days = 90
default_validity_days = 90
common_name_in_san = true
route = ["letsencrypt"]

[profiles.san]
dns = ['(?:[a-z0-9-]+\\.)+example\\.com']
required = true
"""
    )
    engine = create_engine(settings.cas[0], tmp_path)
    assert isinstance(engine, AcmeCAEngine)
    assert isinstance(engine._solver, Dns01Solver)
    assert isinstance(engine._solver.provider, Route53Provider)
    capabilities = engine.capabilities()  # no network: the root alone until a first order
    assert capabilities.ca_not_after == root.not_valid_after_utc
    assert capabilities.signing_algorithm == "ecdsa-with-SHA384"
    assert capabilities.max_requests_per_second == 0.02
