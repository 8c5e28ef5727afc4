"""Teams, GitLab, OCSF (Security Lake layout in S3) and CEF over TLS syslog connectors,
against local stand-ins of their targets (tests/connector_targets.py) and moto S3."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator

import pytest
from moto import mock_aws

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery, RetryableDelivery
from connectors.batch import ConnectorBatch
from connectors.cef import CefSyslogConnector, escape_extension, escape_header
from connectors.gitlab import GitLabTriggerConnector
from connectors.ocsf import OcsfS3Connector
from connectors.registry import build_connector
from connectors.teams import TeamsConnector
from tests.connector_targets import (
    GitLabReceiver,
    SyslogTlsReceiver,
    TeamsReceiver,
    certificate,
    detail,
    envelope,
    parse_cef,
    parse_octet_counted,
    self_signed_certificate,
)

ALL_TYPES = (
    DetailType.ISSUED,
    DetailType.RENEWED,
    DetailType.REVOKED,
    DetailType.ISSUANCE_FAILED,
    DetailType.EXPIRING,
    DetailType.CA_UNAVAILABLE,
)


def event(detail_type: DetailType, tenant: str = "acme", **body) -> CertplaneEvent:
    return CertplaneEvent.from_envelope(envelope(detail_type, detail(detail_type, tenant, **body)))


def sqs_event(*events: CertplaneEvent) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"r{index}",
                "body": json.dumps(envelope(e.detail_type, dict(e.detail))),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for index, e in enumerate(events)
        ]
    }


# -- Microsoft Teams (Workflows webhook, Adaptive Cards) ---------------------------------


@pytest.fixture
def teams() -> Iterator[TeamsReceiver]:
    receiver = TeamsReceiver()
    yield receiver
    receiver.close()


def test_teams_posts_one_adaptive_card_message_per_event(teams) -> None:
    connector = TeamsConnector(None, teams.url)  # the signed workflow URL is the secret
    for detail_type in ALL_TYPES:
        connector.deliver(event(detail_type))
    assert teams.card_errors == [] and len(teams.messages) == len(ALL_TYPES)
    expiring = teams.messages[4]
    assert set(expiring) == {"type", "attachments"} and expiring["type"] == "message"
    (attachment,) = expiring["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, text, facts, footer = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": "Certificate Expiring",
        "weight": "Bolder",
        "size": "Medium",
        "color": "Warning",
        "wrap": True,
    }
    assert "7 days left" in text["text"] and "[acme]" in text["text"]
    assert {"title": "Tenant", "value": "acme"} in facts["facts"]
    assert footer["isSubtle"] is True and "event " in footer["text"]
    for request in teams.target.requests:
        assert request.method == "POST" and request.path == teams.path  # query string intact
        assert request.headers["content-type"] == "application/json"
        assert "authorization" not in request.headers


def test_teams_keeps_cards_small_and_its_outcomes_follow_the_workflow(teams) -> None:
    connector = TeamsConnector(None, teams.url)
    huge = event(DetailType.ISSUED, certificate=certificate("d" * 40_000))
    connector.deliver(huge)
    (request,) = teams.target.requests
    assert len(request.body) <= 28_000 and teams.card_errors == []
    assert huge.event_id in request.body.decode()
    teams.throttle = 1
    with pytest.raises(RetryableDelivery) as raised:
        connector.deliver(event(DetailType.ISSUED))
    assert raised.value.retry_after == 2
    with pytest.raises(PermanentDelivery, match="HTTP 401") as refused:
        TeamsConnector(
            None, teams.target.url + "/workflows/x/triggers/manual/paths/invoke?sig=no"
        ).deliver(event(DetailType.ISSUED))
    assert "sig=" not in str(refused.value) and "/workflows/" not in str(refused.value)


def test_teams_outage_loses_nothing_and_delivers_each_event_once(teams) -> None:
    connector = TeamsConnector(None, teams.url)
    pending = [event(DetailType.ISSUED) for _ in range(4)]
    teams.target.down()
    batch = ConnectorBatch(connector)
    failed = batch(sqs_event(*pending), None)["batchItemFailures"]
    assert len(failed) == 4  # all stay on the queue
    teams.target.up()
    assert batch(sqs_event(*pending), None) == {"batchItemFailures": []}
    delivered = [m["attachments"][0]["content"]["body"][3]["text"] for m in teams.messages]
    assert sorted(delivered) == sorted(f"event {e.event_id} at {e.occurred_at}" for e in pending)


# -- GitLab pipeline trigger -------------------------------------------------------------


@pytest.fixture
def gitlab() -> Iterator[GitLabReceiver]:
    receiver = GitLabReceiver()
    yield receiver
    receiver.close()


def test_gitlab_triggers_a_pipeline_with_token_ref_and_certplane_variables(gitlab) -> None:
    connector = GitLabTriggerConnector(gitlab.url, gitlab.token, ref="release")
    renewed = event(DetailType.RENEWED)
    connector.deliver(renewed)
    (request,) = gitlab.target.requests
    assert request.method == "POST"
    assert request.path == "/api/v4/projects/acme%2Ffleet-config/trigger/pipeline"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # the token in the body is the auth
    body = json.loads(request.body)
    assert set(body) == {"token", "ref", "variables"}
    assert body["token"] == gitlab.token and body["ref"] == "release"
    variables = body["variables"]
    assert all(isinstance(value, str) for value in variables.values())
    certificate_ = renewed.certificate or {}
    assert {k: v for k, v in variables.items() if k != "CERTPLANE_EVENT"} == {
        "CERTPLANE_EVENT_TYPE": "certificate.renewed",
        "CERTPLANE_DETAIL_TYPE": "Certificate Renewed",
        "CERTPLANE_EVENT_ID": renewed.event_id,
        "CERTPLANE_TENANT": "acme",
        "CERTPLANE_OCCURRED_AT": renewed.occurred_at,
        "CERTPLANE_CERTIFICATE_ID": certificate_["certificateId"],
        "CERTPLANE_SERIAL": certificate_["serial"],
        "CERTPLANE_SUBJECT": certificate_["subject"],
        "CERTPLANE_NOT_AFTER": certificate_["notAfter"],
    }
    assert json.loads(variables["CERTPLANE_EVENT"]) == dict(renewed.detail)
    # A CA outage has no certificate: only the event variables.
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    assert "CERTPLANE_SERIAL" not in gitlab.pipelines[1]["variables"]


def test_gitlab_refusals_are_permanent_and_never_show_the_token(gitlab) -> None:
    issued = event(DetailType.ISSUED)
    with pytest.raises(PermanentDelivery, match="HTTP 404") as raised:
        GitLabTriggerConnector(gitlab.url, "glptt-wrong").deliver(issued)
    assert "glptt-" not in str(raised.value)
    with pytest.raises(PermanentDelivery, match="Reference not found"):
        GitLabTriggerConnector(gitlab.url, gitlab.token, ref="nope").deliver(issued)
    gitlab.variables_allowed = False
    with pytest.raises(PermanentDelivery, match="Insufficient permissions"):
        GitLabTriggerConnector(gitlab.url, gitlab.token).deliver(issued)
    assert gitlab.pipelines == []
    for bad_url in ("https://gitlab.example.com/acme/fleet", None):
        with pytest.raises(ValueError):
            GitLabTriggerConnector(bad_url, gitlab.token)
    # The numeric project id works as well as the url-encoded path.
    gitlab.variables_allowed = True
    GitLabTriggerConnector(f"{gitlab.target.url}/api/v4/projects/42/", gitlab.token).deliver(issued)
    assert len(gitlab.pipelines) == 1


# -- OCSF to S3 (Amazon Security Lake custom source) -------------------------------------

SEVERITY_IDS = {0, 1, 2, 3, 4, 5, 6, 99}
KEY = re.compile(
    r"^ext/certplane/region=us-east-1/accountId=123456789012/eventDay=(\d{8})/\d+-[0-9a-f]{32}\.jsonl$"
)


def validate_ocsf(record: dict) -> None:
    """The OCSF 1.1.0 base-event requirements plus Entity Management's required `entity`."""
    for name in ("class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id"):
        assert isinstance(record[name], int), name
    assert record["class_uid"] == 3004 and record["category_uid"] == 3
    assert record["activity_id"] in (0, 1, 2, 3, 4, 99)
    assert record["type_uid"] == record["class_uid"] * 100 + record["activity_id"]
    assert record["severity_id"] in SEVERITY_IDS
    assert record["status_id"] in (0, 1, 2, 99)
    assert 1_700_000_000_000 < record["time"] < 4_000_000_000_000  # milliseconds
    metadata = record["metadata"]
    assert metadata["version"] == "1.1.0"
    assert metadata["product"].get("name") or metadata["product"].get("uid")
    assert isinstance(record["entity"], dict) and record["entity"].get("name")


@pytest.fixture
def s3(boto_session) -> Iterator:
    with mock_aws():
        client = boto_session.client("s3")
        client.create_bucket(Bucket="aws-security-data-lake-us-east-1-abc")
        yield client


def _objects(s3) -> dict[str, list[dict]]:
    listing = s3.list_objects_v2(Bucket="aws-security-data-lake-us-east-1-abc")
    return {
        item["Key"]: [
            json.loads(line)
            for line in s3.get_object(
                Bucket="aws-security-data-lake-us-east-1-abc", Key=item["Key"]
            )["Body"]
            .read()
            .decode()
            .splitlines()
        ]
        for item in listing.get("Contents", [])
    }


def _ocsf(s3) -> OcsfS3Connector:
    return OcsfS3Connector(
        "s3://aws-security-data-lake-us-east-1-abc",
        None,
        region="us-east-1",
        account_id="123456789012",
        s3_client=s3,
    )


def test_ocsf_writes_one_json_lines_object_per_batch_in_the_security_lake_layout(s3) -> None:
    events = [event(detail_type) for detail_type in ALL_TYPES]
    batch = ConnectorBatch(_ocsf(s3))
    assert batch(sqs_event(*events), None) == {"batchItemFailures": []}
    ((key, records),) = _objects(s3).items()
    match = KEY.match(key)
    assert match, key
    assert match.group(1) == datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    assert len(records) == len(events)
    for record in records:
        validate_ocsf(record)
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    by_id = {r["metadata"]["uid"]: r for r in records}
    assert set(by_id) == {e.event_id for e in events}
    issued, renewed, revoked, failed, expiring, ca_down = (by_id[e.event_id] for e in events)
    assert (issued["activity_id"], issued["type_uid"], issued["severity_id"]) == (1, 300401, 1)
    assert issued["entity"]["type"] == "Certificate" and issued["entity"]["type_id"] == 99
    assert issued["entity"]["uid"] == events[0].certificate["certificateId"]
    assert issued["metadata"]["product"] == {
        "name": "certplane",
        "vendor_name": "certplane",
        "version": "1",
    }
    assert renewed["activity_id"] == 3
    assert (revoked["activity_id"], revoked["severity_id"]) == (4, 5)  # keyCompromise: critical
    assert (failed["activity_id"], failed["status_id"], failed["status_code"]) == (
        1,
        2,
        "engine_unavailable",
    )
    assert (expiring["activity_id"], expiring["activity_name"]) == (99, "Expiring")
    assert ca_down["entity"]["type"] == "Certificate Authority" and ca_down["status_id"] == 2
    assert issued["time"] == int(
        datetime.datetime.fromisoformat(events[0].occurred_at.replace("Z", "+00:00")).timestamp()
        * 1000
    )


def test_ocsf_splits_a_batch_spanning_two_event_days(s3) -> None:
    late = datetime.datetime(2026, 12, 3, 23, 59, 59, tzinfo=datetime.UTC)
    early = datetime.datetime(2026, 12, 4, 0, 0, 1, tzinfo=datetime.UTC)
    _ocsf(s3).deliver_many(
        [event(DetailType.ISSUED, occurred_at=early), event(DetailType.ISSUED, occurred_at=late)]
    )
    objects = _objects(s3)
    assert sorted(KEY.match(key).group(1) for key in objects) == ["20261203", "20261204"]
    assert all(len(records) == 1 for records in objects.values())


def test_ocsf_configuration_and_s3_failures(s3) -> None:
    with pytest.raises(PermanentDelivery, match="NoSuchBucket"):
        OcsfS3Connector(
            "s3://missing-bucket/ext/certplane",
            None,
            region="us-east-1",
            account_id="123456789012",
            s3_client=s3,
        ).deliver(event(DetailType.ISSUED))
    for url, options in (
        ("https://bucket", {}),
        ("s3://bucket", {"account_id": "12"}),
        ("s3://bucket", {"source_name": "x" * 21}),
    ):
        with pytest.raises(ValueError):
            OcsfS3Connector(
                url,
                None,
                **{"region": "us-east-1", "account_id": "123456789012", **options},
                s3_client=s3,
            )


# -- CEF over syslog TLS (RFC 5425) ------------------------------------------------------


@pytest.fixture
def syslog(tmp_path) -> Iterator[tuple[SyslogTlsReceiver, str]]:
    cert, key = self_signed_certificate(tmp_path)
    receiver = SyslogTlsReceiver(cert, key)
    yield receiver, cert
    receiver.close()


def test_cef_escaping_follows_the_arcsight_rules() -> None:
    assert escape_header("a|b\\c\nd") == "a\\|b\\\\c d"
    assert escape_extension("k=v|x\\y\r\nz") == "k\\=v|x\\\\y\\r\\nz"


def test_cef_batch_goes_over_one_tls_connection_in_octet_counted_frames(syslog) -> None:
    receiver, ca_file = syslog
    connector = CefSyslogConnector(receiver.url, None, ca_file=ca_file, hostname="pki-01")
    events = [event(DetailType.ISSUED), event(DetailType.REVOKED), event(DetailType.EXPIRING)]
    assert ConnectorBatch(connector)(sqs_event(*events), None) == {"batchItemFailures": []}
    receiver.wait_for(3)
    assert receiver.errors == [] and receiver.connections == 1
    (stream,) = receiver.raw
    first = receiver.messages[0]["bytes"]
    assert stream.startswith(f"{len(first)} ".encode() + first)
    assert [m["bytes"] for m in receiver.messages] == parse_octet_counted(stream)
    issued, revoked, expiring = receiver.messages
    assert (issued["pri"], issued["hostname"], issued["app"], issued["msgid"]) == (
        86,  # authpriv (10) * 8 + informational (6)
        "pki-01",
        "certplane",
        "certificate.issued",
    )
    assert issued["timestamp"] == events[0].occurred_at
    cef = issued["cef"]
    assert (cef["version"], cef["vendor"], cef["product"], cef["device_version"]) == (
        "CEF:0",
        "certplane",
        "certplane",
        "1",
    )
    assert (cef["signature_id"], cef["name"], cef["severity"]) == (
        "certificate.issued",
        "Certificate Issued",
        "3",
    )
    ext, cert = cef["extension"], events[0].certificate
    assert ext["externalId"] == events[0].event_id and ext["cat"] == "Certificate Issued"
    assert (ext["cs1Label"], ext["cs1"]) == ("serialNumber", cert["serial"])
    assert (ext["cs2Label"], ext["cs2"]) == ("fingerprintSha256", cert["fingerprints"]["sha256"])
    assert (ext["cs4Label"], ext["cs4"]) == ("subject", cert["subject"])
    assert ext["rt"].isdigit() and ext["flexDate1Label"] == "notAfter"
    assert revoked["cef"]["severity"] == "9" and revoked["pri"] == 82  # keyCompromise: critical
    assert revoked["cef"]["extension"]["reason"] == "keyCompromise"
    assert expiring["cef"]["severity"] == "5"


def test_cef_escapes_header_and_extension_values_and_counts_octets_not_characters(syslog) -> None:
    receiver, ca_file = syslog
    connector = CefSyslogConnector(
        receiver.url, None, ca_file=ca_file, vendor="Acme|PKI\\", product="cert plane"
    )
    subject = "Gerät=ü|x\\y"
    failure = {"code": "bad=csr", "message": "line one\nline two", "stage": "request"}
    odd = event(DetailType.ISSUED, certificate=certificate(subject))
    failed = event(DetailType.ISSUANCE_FAILED, failure=failure)
    connector.deliver_many([odd, failed])
    receiver.wait_for(2)
    assert receiver.errors == []
    (stream,) = receiver.raw
    assert b"CEF:0|Acme\\|PKI\\\\|cert plane|" in stream
    assert b"cs4=CN\\=Ger\xc3\xa4t\\=\xc3\xbc|x\\\\y" in stream
    assert b"\n" not in stream  # newlines in values are escaped
    first, second = receiver.messages
    assert first["cef"]["vendor"] == "Acme|PKI\\" and first["cef"]["product"] == "cert plane"
    assert first["cef"]["extension"]["cs4"] == f"CN={subject}"
    assert second["cef"]["extension"]["reason"] == "bad=csr: line one\nline two"
    assert second["cef"]["extension"]["outcome"] == "failure"
    assert parse_cef("CEF:0|a|b|c|d|e|10|k=v w=x y")["extension"] == {"k": "v", "w": "x y"}


def test_cef_untrusted_receivers_are_permanent_and_unreachable_ones_retry(syslog) -> None:
    receiver, _ = syslog
    with pytest.raises(PermanentDelivery, match="TLS verification failed"):
        CefSyslogConnector(receiver.url, None).deliver(event(DetailType.ISSUED))  # system CAs
    receiver.close()
    with pytest.raises(RetryableDelivery, match="cannot deliver"):
        CefSyslogConnector(receiver.url, None, ca_file=syslog[1], timeout=2).deliver(
            event(DetailType.ISSUED)
        )
    with pytest.raises(ValueError):
        CefSyslogConnector("udp://127.0.0.1:514", None)


# -- registry ----------------------------------------------------------------------------


def test_registry_builds_the_new_types(tmp_path) -> None:
    assert build_connector("teams", None, "https://example/invoke?sig=x").type_name == "teams"
    assert (
        build_connector(
            "gitlab", "https://gl/api/v4/projects/1", "glptt-x", {"ref": "main"}
        ).type_name
        == "gitlab"
    )
    with mock_aws():
        ocsf = build_connector(
            "ocsf", "s3://lake", None, {"region": "us-east-1", "account_id": "123456789012"}
        )
    assert ocsf.type_name == "ocsf"
    cert, _ = self_signed_certificate(tmp_path)
    assert build_connector("cef", "tls://siem:6514", None, {"ca_file": cert}).type_name == "cef"
