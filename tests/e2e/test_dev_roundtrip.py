"""The foundation's done-when: issue, verify, revoke, restart, still there, events on the bus."""

from __future__ import annotations

import hashlib
import json
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.events import validate_detail
from tests.e2e.conftest import DevProcess, openssl_csr

pytestmark = pytest.mark.e2e


def certificate_id_of(pem_path: Path) -> str:
    certificate = x509.load_pem_x509_certificates(pem_path.read_bytes())[0]
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def openssl_verify(home: Path, certificate: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-CAfile",
            str(home / "ca/root.pem"),
            "-untrusted",
            str(home / "ca/chain.pem"),
            str(certificate),
        ],
        capture_output=True,
        text=True,
    )


def test_issue_verify_revoke_restart_and_events(dev_server: DevProcess, tmp_path: Path) -> None:
    home = dev_server.home
    csr = openssl_csr(tmp_path, "sensor", subject="/CN=sensor-0001")
    out = tmp_path / "sensor.pem"

    dev_server.cli("cert", "issue", "--csr", str(csr), "--profile", "device", "--out", str(out))

    # --out holds the certificate followed by its chain (issuing CA, root).
    certificates = x509.load_pem_x509_certificates(out.read_bytes())
    assert len(certificates) == 3
    assert certificates[0].subject.rfc4514_string() == "CN=sensor-0001"
    verified = openssl_verify(home, out)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{out}: OK" in verified.stdout

    cert_id = certificate_id_of(out)
    shown = dev_server.cli_json("cert", "show", cert_id)
    assert shown["status"] == "ISSUED"
    serial = shown["serial"]
    assert int(serial, 16) == certificates[0].serial_number

    dev_server.cli("cert", "revoke", cert_id, "--reason", "keyCompromise")
    revoked = dev_server.cli_json("cert", "show", serial)
    assert revoked["status"] == "REVOKED"
    assert revoked["revocation"]["reason"] == "keyCompromise"

    assert dev_server.stop() == 0
    dev_server.start()
    after_restart = dev_server.cli_json("cert", "show", cert_id)
    assert after_restart["status"] == "REVOKED"
    assert after_restart["serial"] == serial
    listed = dev_server.cli_json("cert", "list", "--status", "REVOKED")
    assert [item["serial"] for item in listed["items"]] == [serial]

    mine = [
        e for e in dev_server.events() if e["detail"].get("certificate", {}).get("serial") == serial
    ]
    assert [e["detail-type"] for e in mine] == ["Certificate Issued", "Certificate Revoked"]
    for event in mine:
        assert event["source"] == "certplane"
        assert event["detail"]["tenant"] == "default"
        validate_detail(event["detail-type"], event["detail"])
        assert "PRIVATE KEY" not in json.dumps(event)
    assert mine[1]["detail"]["revocation"]["reason"] == "keyCompromise"


def test_kill_9_loses_nothing_acknowledged(dev_server: DevProcess, tmp_path: Path) -> None:
    serials = []
    for index in range(3):
        csr = openssl_csr(tmp_path, f"d{index}", subject=f"/CN=device-{index}")
        view = dev_server.cli_json("cert", "issue", "--csr", str(csr), "--profile", "device")
        serials.append(view["serial"])
    dev_server.cli("cert", "revoke", serials[0], "--reason", "superseded")

    dev_server.stop(signal.SIGKILL)
    dev_server.start()

    assert dev_server.cli_json("cert", "show", serials[0])["status"] == "REVOKED"
    for serial in serials[1:]:
        assert dev_server.cli_json("cert", "show", serial)["status"] == "ISSUED"
    issued_events = {
        e["detail"]["certificate"]["serial"]
        for e in dev_server.events()
        if e["detail-type"] == "Certificate Issued"
    }
    assert set(serials) <= issued_events


def test_home_layout_and_secrets(dev_server: DevProcess) -> None:
    home = dev_server.home
    chain = x509.load_pem_x509_certificates((home / "ca/chain.pem").read_bytes())
    root = x509.load_pem_x509_certificate((home / "ca/root.pem").read_bytes())
    assert chain[-1] == root and len(chain) == 2
    chain[0].verify_directly_issued_by(root)
    assert stat.S_IMODE((home / "admin-token").stat().st_mode) == 0o600
    keys = list((home / "ca/engines").rglob("*.key"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)

    # The front's TLS certificate comes from the dev CA and names localhost and 127.0.0.1.
    tls = x509.load_pem_x509_certificates((home / "tls/server.pem").read_bytes())[0]
    names = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    tls.verify_directly_issued_by(chain[0])

    health = requests.get(f"{dev_server.url}/health", verify=str(home / "ca/root.pem"), timeout=5)
    assert health.json() == {"status": "ok"}
    spec = requests.get(
        f"{dev_server.url}/v1/openapi.json", verify=str(home / "ca/root.pem"), timeout=5
    ).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/certificates" in spec["paths"]


def test_cli_reports_refusals_clearly(dev_server: DevProcess, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "weak", key="rsa1024", subject="/CN=weak-device")
    result = dev_server.cli("cert", "issue", "--csr", str(csr), "--profile", "device", check=False)
    assert result.returncode == 1
    assert "unsupported_key" in result.stderr and "HTTP 400" in result.stderr
    assert "Traceback" not in result.stderr

    csr = openssl_csr(tmp_path, "ok", subject="/CN=device-ok")
    result = dev_server.cli("cert", "issue", "--csr", str(csr), "--profile", "nope", check=False)
    assert result.returncode == 1 and "unknown_profile" in result.stderr

    result = dev_server.cli("cert", "list", "--token", "wrong-token", check=False)
    assert result.returncode == 1 and "HTTP 401" in result.stderr
    assert dev_server.cli_json("cert", "list", "--profile", "device")["items"] == []
