"""The management API as API Gateway invokes it: routes, paging, and every bad input → 4xx."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbridge.engines.local import LocalCAEngine
from certplane.api import ManagementApi
from certplane.auth import CredentialStore
from certplane.config import Settings
from certplane.dev.front import proxy_event
from certplane.dev.lambda_host import DevLambdaContext
from certplane.inventory import CertificateRecord
from certplane.runtime import Runtime
from tests.conftest import CsrFactory, EventTap, LifecycleFactory

TENANT = "default"


class Client:
    """Calls the API with proxy events shaped exactly as the dev front (and API Gateway) does."""

    def __init__(self, api: ManagementApi, token: str) -> None:
        self.api = api
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        payload = (
            raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        )
        event = proxy_event(method, path, all_headers, payload, "127.0.0.1")
        response = self.api.handle(event, DevLambdaContext(function_name="test"))
        assert response["statusCode"] < 500, response
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def client(make_lifecycle: LifecycleFactory, local_engine: LocalCAEngine, tmp_path: Path) -> Client:
    settings = Settings.load()
    pqc_engine = LocalCAEngine("local-pqc", tmp_path / "ca-local-pqc", algorithm="ML-DSA-65")
    runtime = Runtime(
        settings=settings,
        lifecycle=make_lifecycle(settings, {"local-dev": local_engine, "local-pqc": pqc_engine}),
        credentials=CredentialStore(),
    )
    token = runtime.credentials.create_token(TENANT, "alice")
    return Client(ManagementApi(runtime), token)


def inventory_size() -> int:
    return sum(1 for _ in CertificateRecord.by_tenant.query(TENANT))


def test_issue_get_list_renew_revoke(client: Client, csrs: CsrFactory, events: EventTap) -> None:
    status, issued = client.call(
        "POST",
        "/v1/certificates",
        {"csr": csrs.pem(common_name="meter-7"), "profile": "device", "tags": {"site": "lab"}},
    )
    assert status == 201
    assert issued["status"] == "ISSUED" and issued["tags"] == {"site": "lab"}
    certificate = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert format(certificate.serial_number, "032x") == issued["serial"]
    assert len(x509.load_pem_x509_certificates(issued["chain_pem"].encode())) == 2

    for reference in (issued["certificate_id"], issued["serial"], issued["serial"].upper()):
        status, fetched = client.call("GET", f"/v1/certificates/{reference}")
        assert status == 200 and fetched["serial"] == issued["serial"]

    status, renewed = client.call("POST", f"/v1/certificates/{issued['serial']}/renew", {})
    assert status == 201 and renewed["renewed_from"] == issued["serial"]
    renewed_cert = x509.load_pem_x509_certificate(renewed["certificate_pem"].encode())
    assert renewed_cert.public_key() == certificate.public_key()
    status, old = client.call("GET", f"/v1/certificates/{issued['serial']}")
    assert old["status"] == "SUPERSEDED" and old["superseded_by"] == renewed["serial"]

    status, revoked = client.call(
        "POST", f"/v1/certificates/{renewed['certificate_id']}/revoke", {"reason": "keyCompromise"}
    )
    assert status == 200 and revoked["revocation"]["reason"] == "keyCompromise"
    status, again = client.call(
        "POST", f"/v1/certificates/{renewed['serial']}/revoke", {"reason": "keyCompromise"}
    )
    assert status == 409 and again["error"]["code"] == "invalid_state"

    status, listed = client.call("GET", "/v1/certificates?status=revoked")
    assert [item["serial"] for item in listed["items"]] == [renewed["serial"]]
    status, listed = client.call("GET", "/v1/certificates?device=meter-7")
    assert {item["serial"] for item in listed["items"]} == {issued["serial"], renewed["serial"]}
    assert [t for t, _ in events()] == [
        "Certificate Issued",
        "Certificate Renewed",
        "Certificate Revoked",
    ]


def test_paging_walks_every_certificate_once(client: Client, csrs: CsrFactory) -> None:
    serials = set()
    for index in range(5):
        status, view = client.call(
            "POST",
            "/v1/certificates",
            {"csr": csrs.pem(common_name=f"d-{index}"), "profile": "device"},
        )
        serials.add(view["serial"])
    seen: list[str] = []
    cursor = None
    while True:
        path = "/v1/certificates?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = client.call("GET", path)
        assert status == 200 and len(page["items"]) <= 2
        seen.extend(item["serial"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and set(seen) == serials


def test_profiles_cas_openapi_and_health(client: Client) -> None:
    status, profiles = client.call("GET", "/v1/profiles")
    assert {p["name"] for p in profiles["items"]} == {
        "device",
        "server",
        "compact",
        "pqc",
        "short-lived",
    }
    status, cas = client.call("GET", "/v1/cas")
    by_id = {ca["id"]: ca for ca in cas["items"]}
    assert set(by_id) == {"local-dev", "local-pqc"}
    for ca in by_id.values():
        assert ca["capabilities"]["supports_revocation"] is True
        assert len(x509.load_pem_x509_certificates(ca["chain_pem"].encode())) == 2
    assert by_id["local-dev"]["capabilities"]["signing_algorithm"] == "ecdsa-with-SHA256"
    assert by_id["local-pqc"]["capabilities"]["signing_algorithm"] == "ML-DSA-65"
    status, spec = client.call("GET", "/v1/openapi.json", token=None)
    assert status == 200 and "/v1/certificates/{reference}/revoke" in spec["paths"]
    assert client.call("GET", "/health", token=None) == (200, {"status": "ok"})


def _tampered_signature_csr(csrs: CsrFactory) -> str:
    der = bytearray(csrs.csr().public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature BIT STRING
    return (
        base64.encodebytes(bytes(der))
        .decode()
        .join(["-----BEGIN CERTIFICATE REQUEST-----\n", "-----END CERTIFICATE REQUEST-----\n"])
    )


BAD_ISSUES = [
    (
        "malformed PEM",
        lambda c: {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n", "profile": "device"},
        400,
        "malformed_csr",
    ),
    ("garbage DER", lambda c: {"csr": "MIIBadDER", "profile": "device"}, 400, "malformed_csr"),
    (
        "bad CSR signature",
        lambda c: {"csr": _tampered_signature_csr(c), "profile": "device"},
        400,
        "invalid_csr_signature",
    ),
    ("RSA-1024", lambda c: {"csr": c.pem("RSA-1024"), "profile": "device"}, 400, "unsupported_key"),
    ("P-192", lambda c: {"csr": c.pem("P-192"), "profile": "device"}, 400, "unsupported_key"),
    ("unknown profile", lambda c: {"csr": c.pem(), "profile": "nope"}, 400, "unknown_profile"),
    (
        "SAN outside rules",
        lambda c: {
            "csr": c.pem(common_name="web.evil.com", sans=[x509.DNSName("web.evil.com")]),
            "profile": "server",
        },
        400,
        "san_not_allowed",
    ),
    ("missing field", lambda c: {"profile": "device"}, 422, "invalid_request"),
    (
        "unknown field",
        lambda c: {"csr": c.pem(), "profile": "device", "ca": "x"},
        422,
        "invalid_request",
    ),
    (
        "validity out of range",
        lambda c: {"csr": c.pem(), "profile": "device", "validity_days": 0},
        422,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "code"), BAD_ISSUES, ids=[b[0] for b in BAD_ISSUES]
)
def test_bad_issue_requests_get_4xx_and_write_nothing(
    client: Client, csrs: CsrFactory, case: str, body: Any, status: int, code: str
) -> None:
    got_status, got = client.call("POST", "/v1/certificates", body(csrs))
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert got["error"]["message"]
    assert "Traceback" not in got["error"]["message"]
    assert inventory_size() == 0


def test_transport_level_refusals_write_nothing(client: Client, csrs: CsrFactory) -> None:
    cases = [
        (client.call("POST", "/v1/certificates", raw=b"{not json"), 400, "malformed_json"),
        (
            client.call("POST", "/v1/certificates", raw=b"x" * (64 * 1024 + 1)),
            413,
            "payload_too_large",
        ),
        (
            client.call(
                "POST", "/v1/certificates", {"csr": csrs.pem(), "profile": "device"}, token=None
            ),
            401,
            "unauthorized",
        ),
        (
            client.call(
                "POST", "/v1/certificates", {"csr": csrs.pem(), "profile": "device"}, token="wrong"
            ),
            401,
            "unauthorized",
        ),
        (
            client.call(
                "GET", "/v1/certificates", headers={"Authorization": "Basic abc"}, token=None
            ),
            401,
            "unauthorized",
        ),
        (client.call("GET", "/v1/certificates/not-a-serial!"), 400, "invalid_reference"),
        (client.call("GET", "/v1/certificates/" + "ab" * 20), 404, "certificate_not_found"),
        (client.call("GET", "/v1/certificates?cursor=%%%"), 400, "invalid_cursor"),
        (client.call("GET", "/v1/certificates?limit=100000"), 422, "invalid_request"),
        (client.call("GET", "/v1/nothing-here"), 404, "not_found"),
        (
            client.call("POST", "/v1/certificates/ab/revoke", {"reason": "because"}),
            400,
            "invalid_reason",
        ),
    ]
    for (status, body), want_status, want_code in cases:
        assert (status, body["error"]["code"]) == (want_status, want_code), body
    assert inventory_size() == 0


def test_idempotency_key_header_yields_one_certificate(client: Client, csrs: CsrFactory) -> None:
    body = {"csr": csrs.pem(common_name="retry-me"), "profile": "device"}
    headers = {"Idempotency-Key": "order-42"}
    first = client.call("POST", "/v1/certificates", body, headers=headers)
    second = client.call("POST", "/v1/certificates", body, headers=headers)
    assert first[0] == second[0] == 201
    assert first[1]["serial"] == second[1]["serial"]
    assert inventory_size() == 1
    other = {"csr": csrs.pem(common_name="someone-else"), "profile": "device"}
    status, error = client.call("POST", "/v1/certificates", other, headers=headers)
    assert (status, error["error"]["code"]) == (409, "idempotency_key_reused")
    assert inventory_size() == 1
