"""Jira Cloud and ServiceNow connectors against local stand-ins (tests/connector_targets.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery, RetryableDelivery
from connectors.jira import JiraConnector, adf, dedup_label
from connectors.registry import build_connector
from connectors.servicenow import ServiceNowConnector, correlation_id
from tests.connector_targets import (
    JiraReceiver,
    ServiceNowReceiver,
    adf_errors,
    certificate,
    detail,
    envelope,
)


def event(detail_type: DetailType, tenant: str = "acme", **body) -> CertplaneEvent:
    return CertplaneEvent.from_envelope(envelope(detail_type, detail(detail_type, tenant, **body)))


@pytest.fixture
def jira() -> Iterator[JiraReceiver]:
    receiver = JiraReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def servicenow() -> Iterator[ServiceNowReceiver]:
    receiver = ServiceNowReceiver()
    yield receiver
    receiver.close()


def _jira(receiver: JiraReceiver) -> JiraConnector:
    return JiraConnector(receiver.url, receiver.secret, project=receiver.project)


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


# -- Jira --------------------------------------------------------------------------------


def test_jira_creates_an_adf_issue_with_mapped_labels_after_a_jql_search(jira) -> None:
    expiring_cert = certificate("device-42")
    expiring = event(DetailType.EXPIRING, certificate=expiring_cert)
    _jira(jira).deliver(expiring)
    assert jira.failures == []
    search, create = jira.target.requests
    for request in (search, create):
        assert request.headers["authorization"] == _basic(jira.secret)
        assert request.headers["accept"] == "application/json"
    assert (search.method, search.path) == ("POST", "/rest/api/3/search/jql")
    jql = json.loads(search.body)["jql"]
    assert 'project = "PKI"' in jql and "statusCategory != Done" in jql
    assert f'labels = "certplane-expiring-{expiring_cert["certificateId"]}"' in jql
    assert (create.method, create.path) == ("POST", "/rest/api/3/issue")
    (issue,) = jira.issues.values()
    fields = issue["fields"]
    assert fields["project"] == {"key": "PKI"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[acme] certificate CN=device-42 expires in 7 days"
    assert fields["labels"] == [
        "certplane",
        "certplane-tenant-acme",
        "certplane-profile-device",
        "certplane-condition-expiring",
        f"certplane-expiring-{expiring_cert['certificateId']}",
    ]
    description = fields["description"]
    assert adf_errors(description) == []
    assert description["type"] == "doc" and description["version"] == 1
    lead, facts, footer = description["content"]
    assert lead["content"][0]["marks"] == [{"type": "strong"}]
    assert facts["type"] == "bulletList"
    texts = json.dumps(facts)
    assert expiring_cert["serial"] in texts and expiring_cert["notAfter"] in texts
    assert expiring.event_id in footer["content"][0]["text"]


def test_jira_one_issue_per_certificate_and_condition(jira) -> None:
    connector = _jira(jira)
    compromised = certificate("device-7", status="REVOKED")
    revoked = event(DetailType.REVOKED, certificate=compromised)
    connector.deliver(revoked)
    connector.deliver(revoked)  # a redelivery: found by the JQL search, nothing created
    connector.deliver(event(DetailType.REVOKED, certificate=compromised))  # same condition
    for _ in range(3):  # a failure storm for one profile
        connector.deliver(event(DetailType.ISSUANCE_FAILED))
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    connector.deliver(event(DetailType.CA_UNAVAILABLE, tenant="other"))  # another tenant's CA
    # Not a Jira matter: issued, a revocation for another reason, expired, CRL.
    connector.deliver(event(DetailType.ISSUED))
    connector.deliver(
        event(
            DetailType.REVOKED,
            certificate=certificate(status="REVOKED"),
            revocation={"reason": "superseded", "revokedAt": "2026-12-04T10:00:00Z"},
        )
    )
    assert jira.failures == []
    dedup = sorted(issue["fields"]["labels"][-1] for issue in jira.issues.values())
    assert dedup == sorted(
        [
            f"certplane-key-compromise-{compromised['certificateId']}",
            "certplane-issuance-failed-profile-device",
            "certplane-ca-unavailable-local-dev",
            "certplane-ca-unavailable-local-dev",
        ]
    )
    assert {issue["fields"]["labels"][1] for issue in jira.issues.values()} == {
        "certplane-tenant-acme",
        "certplane-tenant-other",
    }
    creates = [r for r in jira.target.requests if r.path == "/rest/api/3/issue"]
    assert len(creates) == 4


def test_jira_renewal_comments_and_transitions_the_expiring_issue_to_done(jira) -> None:
    connector = _jira(jira)
    old = certificate("device-5")
    connector.deliver(event(DetailType.EXPIRING, certificate=old))
    other = certificate("device-6")
    connector.deliver(event(DetailType.EXPIRING, certificate=other))
    new = certificate("device-5")
    renewed = event(
        DetailType.RENEWED, certificate=new, previousCertificate={**old, "status": "SUPERSEDED"}
    )
    connector.deliver(renewed)
    assert jira.failures == []
    closed, still_open = jira.issues.values()
    assert (closed["status"], closed["category"]) == ("Closed", "done")  # "Resolve", by category
    assert still_open["category"] == "new" and still_open["comments"] == []
    (comment,) = closed["comments"]
    assert adf_errors(comment) == []
    assert new["serial"] in json.dumps(comment) and renewed.event_id in json.dumps(comment)
    calls = [(r.method, r.path) for r in jira.target.requests[-4:]]
    issue_id = closed["id"]
    assert calls == [
        ("POST", "/rest/api/3/search/jql"),
        ("POST", f"/rest/api/3/issue/{issue_id}/comment"),
        ("GET", f"/rest/api/3/issue/{issue_id}/transitions"),
        ("POST", f"/rest/api/3/issue/{issue_id}/transitions"),
    ]
    assert json.loads(jira.target.requests[-1].body) == {"transition": {"id": "41"}}
    # Redelivered: the issue is done, so the search finds nothing and nothing more happens.
    connector.deliver(renewed)
    assert len(closed["comments"]) == 1
    # A renewal of a certificate that never had an issue is fine too.
    connector.deliver(event(DetailType.RENEWED))
    assert jira.failures == []


def test_jira_fake_enforces_the_vendor_contract(jira) -> None:
    import requests

    url, headers = jira.url, {"Authorization": _basic(jira.secret)}
    assert (
        requests.post(f"{url}/rest/api/3/search", json={"jql": "project = PKI"}).status_code == 401
    )
    gone = requests.post(f"{url}/rest/api/3/search", json={"jql": "project = PKI"}, headers=headers)
    assert gone.status_code == 410 and "CHANGE-2046" in gone.json()["errorMessages"][0]
    unbounded = requests.post(f"{url}/rest/api/3/search/jql", json={"jql": ""}, headers=headers)
    assert unbounded.status_code == 400
    plain = {
        "fields": {
            "project": {"key": "PKI"},
            "issuetype": {"name": "Task"},
            "summary": "x",
            "description": "a plain string",
        }
    }
    answer = requests.post(f"{url}/rest/api/3/issue", json=plain, headers=headers)
    assert answer.status_code == 400 and "description" in answer.json()["errors"]
    assert adf_errors(adf("lead", [("empty", "")])) == []  # empty values are dropped
    assert adf_errors({"type": "doc", "version": 1, "content": [{"type": "text", "text": ""}]})


def test_jira_outcomes_throttling_auth_and_configuration(jira) -> None:
    jira.throttle = 1
    with pytest.raises(RetryableDelivery) as raised:
        _jira(jira).deliver(event(DetailType.CA_UNAVAILABLE))
    assert raised.value.retry_after == 5
    _jira(jira).deliver(event(DetailType.CA_UNAVAILABLE))  # after the throttle: created
    assert len(jira.issues) == 1
    with pytest.raises(PermanentDelivery, match="HTTP 401"):
        JiraConnector(jira.url, f"{jira.email}:wrong", project="PKI").deliver(
            event(DetailType.CA_UNAVAILABLE, ca="other-ca")
        )
    with pytest.raises(PermanentDelivery, match="HTTP 400"):
        JiraConnector(jira.url, jira.secret, project="PKI", issue_type="Epic").deliver(
            event(DetailType.CA_UNAVAILABLE, ca="third-ca")
        )
    jira.target.down()
    with pytest.raises(RetryableDelivery, match="cannot connect"):
        _jira(jira).deliver(event(DetailType.CA_UNAVAILABLE, ca="fourth-ca"))
    for bad in (None, "no-colon", "email@x:"):
        with pytest.raises(ValueError):
            JiraConnector("https://acme.atlassian.net", bad, project="PKI")
    assert dedup_label("ca-unavailable", "my ca") == "certplane-ca-unavailable-my_ca"


# -- ServiceNow --------------------------------------------------------------------------


def _now(receiver: ServiceNowReceiver, **options) -> ServiceNowConnector:
    return ServiceNowConnector(receiver.url, receiver.secret, **options)


def test_servicenow_opens_one_incident_per_condition_by_correlation_id(servicenow) -> None:
    connector = _now(servicenow, assignment_group="pki-ops")
    compromised = certificate("device-7", status="REVOKED")
    revoked = event(DetailType.REVOKED, certificate=compromised)
    connector.deliver(revoked)
    connector.deliver(revoked)  # a redelivery: found by correlation_id, nothing created
    for _ in range(3):
        connector.deliver(event(DetailType.ISSUANCE_FAILED))
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    connector.deliver(event(DetailType.EXPIRING))  # not an incident here
    connector.deliver(
        event(
            DetailType.REVOKED,
            certificate=certificate(status="REVOKED"),
            revocation={"reason": "cessationOfOperation", "revokedAt": "2026-12-04T10:00:00Z"},
        )
    )
    assert servicenow.failures == []
    incidents = list(servicenow.tables["incident"].values())
    assert sorted(i["correlation_id"] for i in incidents) == sorted(
        [
            f"certplane/acme/key-compromise/{compromised['certificateId']}",
            "certplane/acme/issuance-failed/profile-device",
            "certplane/acme/ca-unavailable/local-dev",
        ]
    )
    key_compromise = next(i for i in incidents if "key-compromise" in i["correlation_id"])
    assert (key_compromise["urgency"], key_compromise["impact"]) == ("1", "1")
    assert "priority" not in key_compromise
    assert key_compromise["assignment_group"] == "pki-ops"
    assert compromised["serial"] in key_compromise["description"]
    assert revoked.event_id in key_compromise["description"]
    first_query, create = servicenow.target.requests[:2]
    assert first_query.method == "GET" and first_query.path.startswith("/api/now/table/incident?")
    assert "correlation_id%3Dcertplane%2Facme%2Fkey-compromise%2F" in first_query.path
    assert "active%3Dtrue" in first_query.path
    assert (create.method, create.path) == ("POST", "/api/now/table/incident")
    for request in servicenow.target.requests:
        assert request.headers["authorization"] == _basic(servicenow.secret)
    # Resolved upstream (inactive): the next occurrence opens a new incident.
    for incident in incidents:
        incident["active"] = "false"
    connector.deliver(event(DetailType.CA_UNAVAILABLE))
    assert len(servicenow.tables["incident"]) == 4


def test_servicenow_upserts_certificate_cis_on_issue_and_renewal(servicenow) -> None:
    connector = _now(servicenow)
    issued_cert = certificate("device-3", keyAlgorithm="RSA-2048")
    connector.deliver(event(DetailType.ISSUED, certificate=issued_cert))
    connector.deliver(event(DetailType.ISSUED, certificate=issued_cert))  # redelivery: PATCH
    renewed_cert = certificate("device-3")
    connector.deliver(
        event(
            DetailType.RENEWED,
            certificate=renewed_cert,
            previousCertificate={**issued_cert, "status": "SUPERSEDED"},
        )
    )
    assert servicenow.failures == []
    cis = servicenow.tables["cmdb_ci_certificate"]
    assert len(cis) == 2
    first = next(ci for ci in cis.values() if ci["serial_number"] == issued_cert["serial"])
    assert first == {
        "sys_id": first["sys_id"],
        "name": "device-3",
        "fingerprint": issued_cert["fingerprints"]["sha256"],
        "fingerprint_algorithm": "SHA-256",
        "serial_number": issued_cert["serial"],
        "subject": "CN=device-3",
        "issuer": "CN=certplane dev issuing CA",
        "valid_from": "2026-12-01 00:00:00",
        "valid_to": "2027-12-01 00:00:00",
        "key_size": "2048",
        "is_ca": "false",
        "version": "3",
    }
    methods = [(r.method, r.path.split("?")[0]) for r in servicenow.target.requests]
    assert methods == [
        ("GET", "/api/now/table/cmdb_ci_certificate"),
        ("POST", "/api/now/table/cmdb_ci_certificate"),
        ("GET", "/api/now/table/cmdb_ci_certificate"),
        ("PATCH", f"/api/now/table/cmdb_ci_certificate/{first['sys_id']}"),
        ("GET", "/api/now/table/cmdb_ci_certificate"),
        ("POST", "/api/now/table/cmdb_ci_certificate"),
    ]
    # Found by serial even when the stored fingerprint differs (e.g. discovered elsewhere).
    first["fingerprint"] = "AB:CD"
    connector.deliver(event(DetailType.ISSUED, certificate=issued_cert))
    assert len(cis) == 2 and first["fingerprint"] == issued_cert["fingerprints"]["sha256"]
    # cmdb = false: issued certificates are not a ServiceNow matter for this connector.
    before = len(servicenow.target.requests)
    _now(servicenow, cmdb=False).deliver(event(DetailType.ISSUED))
    assert len(servicenow.target.requests) == before


def test_servicenow_outcomes_throttling_auth_and_configuration(servicenow) -> None:
    servicenow.throttle = 1
    with pytest.raises(RetryableDelivery) as raised:
        _now(servicenow).deliver(event(DetailType.CA_UNAVAILABLE))
    assert raised.value.retry_after == 7
    _now(servicenow).deliver(event(DetailType.CA_UNAVAILABLE))
    assert len(servicenow.tables["incident"]) == 1
    with pytest.raises(PermanentDelivery, match="HTTP 401"):
        ServiceNowConnector(servicenow.url, f"{servicenow.user}:wrong").deliver(
            event(DetailType.ISSUED)
        )
    servicenow.target.down()
    with pytest.raises(RetryableDelivery):
        _now(servicenow).deliver(event(DetailType.ISSUED))
    for bad in (None, "user", ":password"):
        with pytest.raises(ValueError):
            ServiceNowConnector("https://acme.service-now.com", bad)
    long_key = correlation_id("t" * 63, "issuance-failed", "a" * 40)
    assert len(long_key) <= 100 and "^" not in correlation_id("acme", "ca-unavailable", "x^y")


def test_registry_builds_jira_and_servicenow() -> None:
    jira = build_connector(
        "jira", "https://acme.atlassian.net", "me@acme.example:tok", {"project": "PKI"}
    )
    assert jira.type_name == "jira"
    now = build_connector("servicenow", "https://acme.service-now.com", "svc:pw")
    assert now.type_name == "servicenow"
