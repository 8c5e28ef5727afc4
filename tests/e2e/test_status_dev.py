"""Revocation status against a real `certplane dev`, checked with openssl only.

One revocation, four views that must agree within one regeneration period: the inventory
(CLI), the Certifier status endpoint, OCSP (`openssl ocsp` on the plain-HTTP status port) and
the next CRL (`openssl verify -crl_check -crl_download`, fetched from the certificate's CDP).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certplane.events import validate_detail
from tests.e2e.conftest import DevProcess, openssl_csr

pytestmark = pytest.mark.e2e
CRL_WAIT_SECONDS = 30


def openssl_ocsp(dev: DevProcess, folder: Path, leaf: Path) -> str:
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(folder / "issuing.pem"),
            "-cert",
            str(leaf),
            "-url",
            f"{dev.status_url}/ocsp",
            "-CAfile",
            str(dev.home / "ca/root.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr + result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"{leaf}:"))
    return line.split(":", 1)[1].strip()


def verify_with_downloaded_crl(dev: DevProcess, leaf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            str(dev.home / "ca/root.pem"),
            "-untrusted",
            str(dev.home / "ca/chain.pem"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_revocation_agrees_everywhere(dev_server: DevProcess, tmp_path: Path) -> None:
    assert dev_server.status_url.startswith("http://")
    csr = openssl_csr(tmp_path, "device", subject="/CN=status-device-1")
    bundle = tmp_path / "bundle.pem"
    dev_server.cli("cert", "issue", "--csr", str(csr), "--profile", "device", "--out", str(bundle))
    certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificates[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "issuing.pem").write_bytes(certificates[1].public_bytes(serialization.Encoding.PEM))
    certificate = certificates[0]
    shard = certificate.serial_number % 4
    cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = cdp[0].full_name[0].value
    assert crl_url == f"{dev_server.status_url}/crl/local-dev/{shard}.crl"
    certificate_id = hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    # Before: good everywhere; the CRL and the CA certificate are served over plain HTTP.
    assert openssl_ocsp(dev_server, tmp_path, leaf) == "good"
    assert verify_with_downloaded_crl(dev_server, leaf).returncode == 0
    issuer = requests.get(f"{dev_server.status_url}/ca/local-dev.cer", timeout=10)
    assert issuer.status_code == 200
    assert issuer.content == certificates[1].public_bytes(serialization.Encoding.DER)
    for missing in ("/crl/nope/0.crl", "/crl/local-dev/999.crl", "/nothing", "/ca/x.pem"):
        assert requests.get(f"{dev_server.status_url}{missing}", timeout=10).status_code == 404

    dev_server.cli("cert", "revoke", certificate_id, "--reason", "keyCompromise")

    assert dev_server.cli_json("cert", "show", certificate_id)["status"] == "REVOKED"
    certifier = requests.get(
        f"{dev_server.url}/v1/certifier/certificate/status/{certificate_id}",
        verify=str(dev_server.home / "ca/root.pem"),
        timeout=30,
    )
    assert certifier.status_code == 200 and certifier.json()["status"] == "REVOKED"
    assert openssl_ocsp(dev_server, tmp_path, leaf) == "revoked"
    deadline = time.monotonic() + CRL_WAIT_SECONDS
    while True:
        crl = x509.load_der_x509_crl(requests.get(crl_url, timeout=10).content)
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number):
            break
        assert time.monotonic() < deadline, "the CRL did not list the revocation in time"
        time.sleep(0.5)
    result = verify_with_downloaded_crl(dev_server, leaf)
    assert result.returncode == 2 and "error 23" in result.stdout + result.stderr, result
    assert "certificate revoked" in result.stdout + result.stderr

    events = dev_server.events()
    deadline = time.monotonic() + 10
    while not any(e["detail-type"] == "CRL Published" and e["detail"]["entries"] for e in events):
        assert time.monotonic() < deadline
        time.sleep(0.5)
        events = dev_server.events()
    for envelope in events:
        validate_detail(envelope["detail-type"], envelope["detail"])
    assert any(e["detail-type"] == "Certificate Revoked" for e in events)


def test_ocsp_bad_input_over_http(dev_server: DevProcess) -> None:
    url = f"{dev_server.status_url}/ocsp"
    cases = {
        "garbage": b"garbage",
        "truncated": bytes.fromhex("3045302f"),
        "oversized": b"\x30" * (100 * 1024),
    }
    for name, body in cases.items():
        response = requests.post(
            url, data=body, headers={"Content-Type": "application/ocsp-request"}, timeout=10
        )
        assert response.status_code == 200, name
        parsed = ocsp.load_der_ocsp_response(response.content)
        assert parsed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, name
    response = requests.get(f"{url}/bm90LW9jc3A=", timeout=10)
    assert response.status_code == 200
    assert (
        ocsp.load_der_ocsp_response(response.content).response_status
        == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def issue_device(dev: DevProcess, folder: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    csr = openssl_csr(folder, name, subject=f"/CN={name}")
    bundle = folder / f"{name}-bundle.pem"
    dev.cli("cert", "issue", "--csr", str(csr), "--profile", "device", "--out", str(bundle))
    certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
    leaf, issuing = folder / f"{name}.pem", folder / "issuing.pem"
    leaf.write_bytes(certificates[0].public_bytes(serialization.Encoding.PEM))
    issuing.write_bytes(certificates[1].public_bytes(serialization.Encoding.PEM))
    return leaf, issuing, certificates[0]


def test_gnutls_and_certvalidator_follow_the_certificate_urls(
    dev_server: DevProcess, tmp_path: Path
) -> None:
    """GnuTLS (ocsptool, certtool) and pyhanko-certvalidator fetch from the AIA/CDP URLs."""
    if shutil.which("ocsptool") is None or shutil.which("certtool") is None:
        pytest.skip("GnuTLS tools (gnutls-bin) are not installed")
    certvalidator = pytest.importorskip("pyhanko_certvalidator")
    good, issuing, _ = issue_device(dev_server, tmp_path, "gnutls-good")
    bad, _, bad_certificate = issue_device(dev_server, tmp_path, "gnutls-bad")
    bad_id = hashlib.sha1(bad_certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    dev_server.cli("cert", "revoke", bad_id, "--reason", "keyCompromise")

    def ask(leaf: Path) -> str:
        result = subprocess.run(
            ["ocsptool", "--ask", "--load-issuer", str(issuing), "--load-cert", str(leaf)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout + result.stderr

    answer = ask(good)
    assert "Certificate Status: good" in answer
    assert "Verifying OCSP Response: Success" in answer
    assert "Certificate Status: revoked" in ask(bad)

    crl_url = (
        bad_certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        .value[0]
        .full_name[0]
        .value
    )
    deadline = time.monotonic() + CRL_WAIT_SECONDS
    while True:
        der = requests.get(crl_url, timeout=10).content
        crl = x509.load_der_x509_crl(der)
        if crl.get_revoked_certificate_by_serial_number(bad_certificate.serial_number):
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    crl_pem = tmp_path / "shard.crl"
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(
        [
            "certtool",
            "--verify-crl",
            "--load-ca-certificate",
            str(issuing),
            "--infile",
            str(crl_pem),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verified" in checked.stdout + checked.stderr

    root = x509.load_pem_x509_certificate((dev_server.home / "ca/root.pem").read_bytes())
    intermediate = x509.load_pem_x509_certificate(issuing.read_bytes())

    def validate(leaf: Path) -> None:
        from asn1crypto import x509 as asn1_x509

        def load(certificate: x509.Certificate) -> asn1_x509.Certificate:
            return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))

        context = certvalidator.ValidationContext(
            trust_roots=[load(root)], allow_fetching=True, revocation_mode="hard-fail"
        )
        validator = certvalidator.CertificateValidator(
            load(x509.load_pem_x509_certificate(leaf.read_bytes())),
            intermediate_certs=[load(intermediate)],
            validation_context=context,
        )
        asyncio.run(validator.async_validate_usage({"digital_signature"}))

    validate(good)
    from pyhanko_certvalidator.errors import RevokedError

    with pytest.raises(RevokedError):
        validate(bad)
