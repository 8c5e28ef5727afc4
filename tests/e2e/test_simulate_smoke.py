"""Issue 8: `certplane simulate` against a real `certplane dev`, checked from the server's side.

Six devices, EST and the Certifier API alternating, one renewal and one revocation per door.
The simulator's own numbers must add up, and then every certificate it acknowledged is looked
up independently (`certplane cert show`, openssl verify, events.jsonl). No time is asserted.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections import Counter

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import DevProcess

pytestmark = pytest.mark.e2e


def test_mixed_fleet_enrolls_renews_revokes_and_is_all_recorded(dev_server: DevProcess, tmp_path):
    report = dev_server.cli_json(
        "simulate",
        "--devices",
        "6",
        "--rate",
        "20",
        "--protocol",
        "mixed",
        "--renew-fraction",
        "0.5",
        "--revoke-fraction",
        "0.34",
        "--verify-inventory",
    )
    assert report["errors"] == 0 and report["errors_by_kind"] == {}
    assert report["devices"] == 6
    operations = {name: op["requests"] for name, op in report["operations"].items()}
    assert operations == {
        "enroll.est": 3,
        "enroll.certifier": 3,
        "renew.est": 1,
        "renew.certifier": 1,
        "revoke.est": 1,
        "revoke.certifier": 1,
    }
    assert report["requests"] == 10 and report["certificates"] == 8
    assert report["inventory"] == {
        "checked": 8,
        "missing": 0,
        "wrong_status": 0,
        "wrong_certificate": 0,
    }
    acknowledged = report["acknowledged"]
    assert len({a["certificate_id"] for a in acknowledged}) == 8
    assert Counter(a["expected_status"] for a in acknowledged) == {
        "ISSUED": 4,
        "SUPERSEDED": 2,
        "REVOKED": 2,
    }

    # The server's view, certificate by certificate, through the management API.
    root, chain = dev_server.home / "ca/root.pem", dev_server.home / "ca/chain.pem"
    for entry in acknowledged:
        view = dev_server.cli_json("cert", "show", entry["certificate_id"])
        assert view["status"] == entry["expected_status"], entry
        assert view["sha256_fingerprint"] == entry["sha256"]
        assert view["subject"] == f"CN={entry['device']}"
        pem = dev_server.cli("cert", "show", entry["certificate_id"], "--pem").stdout
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        assert hashlib.sha1(der).hexdigest() == entry["certificate_id"]
        leaf = tmp_path / f"{entry['certificate_id']}.pem"
        leaf.write_text(pem)
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)],
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    superseded = [a for a in acknowledged if a["expected_status"] == "SUPERSEDED"]
    assert {a["protocol"] for a in superseded} == {"est", "certifier"}
    for old in superseded:
        renewed = [
            a for a in acknowledged if a["device"] == old["device"] and a["operation"] == "renew"
        ]
        assert len(renewed) == 1

    # Every certificate was announced, and every revocation too.
    events = dev_server.events()
    announced = Counter(
        (event["detail-type"], event["detail"]["certificate"]["certificateId"])
        for event in events
        if event["detail-type"].startswith("Certificate ")
    )
    for entry in acknowledged:
        kind = "Certificate Issued" if entry["operation"] == "enroll" else "Certificate Renewed"
        assert announced[(kind, entry["certificate_id"])] == 1, entry
        if entry["expected_status"] == "REVOKED":
            assert announced[("Certificate Revoked", entry["certificate_id"])] == 1, entry


def test_simulate_without_a_server_fails_cleanly(tmp_path):
    missing = DevProcess(tmp_path / "nowhere")
    result = missing.cli("simulate", "--devices", "1", "--json", check=False)
    assert result.returncode == 2
    assert "no server" in result.stderr
