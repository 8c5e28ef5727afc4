"""Issue 3 parts A and D: a libCertifier-shaped client against a real `certplane dev`.

Over real HTTPS (TLS >= 1.2, peer verified against HOME/ca/root.pem) with `requests`, using
the bootstrap material `certplane dev` writes: enroll with the sample seed, renew with the
issued certificate, revoke it, and read the status; plus a SAT enrollment of a compact cert.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from tests.certifier_wire import (
    certificate_request,
    headers,
    libcertifier_csr,
    pretty_json,
    revoke_request,
    sat_token,
    x509_token,
)
from tests.e2e.conftest import DevProcess

pytestmark = pytest.mark.e2e
# An independently built libCertifier v2.2.1 `certifierUtil`, if the machine has one.
CERTIFIER_UTIL = os.environ.get("CERTIFIER_UTIL") or shutil.which("certifierUtil")
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)
# The keys libCertifier v2.2.1's config loader (src/property.c) reads.
LIBCERTIFIER_V221_KEYS = {
    "libcertifier.certifier.url",
    "libcertifier.profile.name",
    "libcertifier.crt.type",
    "libcertifier.password",
    "libcertifier.system.id",
    "libcertifier.fabric.id",
    "libcertifier.node.id",
    "libcertifier.product.id",
    "libcertifier.authentication.tag.1",
    "libcertifier.http.timeout",
    "libcertifier.http.connect.timeout",
    "libcertifier.http.trace",
    "libcertifier.measure.performance",
    "libcertifier.autorenew.interval",
    "libcertifier.keystore",
    "libcertifier.ca.info",
    "libcertifier.ca.path",
    "libcertifier.num.days",
    "libcertifier.tls.insecure.peer",
    "libcertifier.tls.insecure.host",
    "libcertifier.ecc.curve.id",
    "libcertifier.root.ca",
    "libcertifier.int.ca",
    "libcertifier.log.file",
    "libcertifier.log.level",
    "libcertifier.log.max.size",
    "libcertifier.source.name",
    "libcertifier.certificate.lite",
    "libcertifier.cn.name",
    "libcertifier.ext.key.usage",
    "libcertifier.autorenew.certs.path.list",
}


class Tls12Adapter(HTTPAdapter):
    """libCertifier sets CURL_SSLVERSION_TLSv1_2: refuse anything older."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)


class DeviceClient:
    """The client's calls; `verify=` on every request (the environment's CA bundle wins else)."""

    def __init__(self, server: DevProcess) -> None:
        self.base = f"{server.url}/v1/certifier"
        self.root = str(server.home / "ca/root.pem")
        self.http = requests.Session()
        self.http.mount("https://", Tls12Adapter())

    def post(self, path: str, document: dict[str, Any], bearer: str) -> requests.Response:
        return self.http.post(
            f"{self.base}{path}",
            data=pretty_json(document).encode(),
            headers=headers(bearer),
            verify=self.root,
            timeout=30,
        )

    def status(self, certificate_id: str) -> str:
        response = self.http.get(
            f"{self.base}/certificate/status/{certificate_id}", verify=self.root, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["status"]


def print_certs(pkcs7_pem: str) -> list[x509.Certificate]:
    """The chain as `openssl pkcs7 -print_certs` reads it, in the order it appears."""
    printed = subprocess.run(
        ["openssl", "pkcs7", "-print_certs"],
        input=pkcs7_pem,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return x509.load_pem_x509_certificates("".join(PEM_BLOCK.findall(printed)).encode())


def spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sha1_hex(certificate: x509.Certificate) -> str:
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_reply(response: requests.Response, home: Path, tmp_path: Path) -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    reply = response.json()
    chain = print_certs(reply["certificateChain"])
    assert len(chain) == 3
    assert chain[1:] == x509.load_pem_x509_certificates((home / "ca/chain.pem").read_bytes())
    assert reply["certificateId"] == sha1_hex(chain[0])
    leaf = tmp_path / f"{reply['certificateId']}.pem"
    leaf.write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-CAfile",
            str(home / "ca/root.pem"),
            "-untrusted",
            str(home / "ca/chain.pem"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return chain


def test_enroll_renew_revoke_status_with_the_dev_seed(
    dev_server: DevProcess, tmp_path: Path
) -> None:
    home = dev_server.home
    seed = x509.load_pem_x509_certificate((home / "bootstrap/seed.pem").read_bytes())
    seed_key = serialization.load_pem_private_key(
        (home / "bootstrap/seed.key").read_bytes(), password=None
    )
    assert isinstance(seed_key, ec.EllipticCurvePrivateKey)
    client = DeviceClient(dev_server)
    device_key = ec.generate_private_key(ec.SECP256R1())

    enrolled = client.post(
        "/certificate",
        certificate_request(libcertifier_csr(device_key), nodeAddress="1DevX9a", validityDays=365),
        x509_token(seed, seed_key),
    )
    chain = check_reply(enrolled, home, tmp_path)
    leaf = chain[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "1DevX9a"
    assert spki(leaf) == device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    first_id = sha1_hex(leaf)
    assert client.status(first_id) == "GOOD"

    renewed = client.post("/renew", {"certificateId": first_id}, x509_token(leaf, device_key))
    new_leaf = check_reply(renewed, home, tmp_path)[0]
    assert spki(new_leaf) == spki(leaf) and sha1_hex(new_leaf) != first_id
    second_id = sha1_hex(new_leaf)

    revoked = client.post("/revoke", revoke_request(second_id), x509_token(new_leaf, device_key))
    assert revoked.status_code == 200, revoked.text
    assert client.status(second_id) == "REVOKED"
    assert client.status("f" * 40) == "UNKNOWN"

    # A revoked certificate no longer authenticates; nothing is issued for it.
    refused = client.post("/renew", {"certificateId": second_id}, x509_token(new_leaf, device_key))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "certificate_not_live"

    serials = {format(c.serial_number, "032x") for c in (leaf, new_leaf)}
    mine = [
        e["detail-type"]
        for e in dev_server.events()
        if e["detail"].get("certificate", {}).get("serial") in serials
    ]
    assert mine == ["Certificate Issued", "Certificate Renewed", "Certificate Revoked"]


def test_sat_enrollment_of_a_compact_certificate(dev_server: DevProcess, tmp_path: Path) -> None:
    home = dev_server.home
    client = DeviceClient(dev_server)
    token = (home / "bootstrap/sat-token").read_text().strip()
    response = client.post(
        "/certificate",
        certificate_request(
            libcertifier_csr(ec.generate_private_key(ec.SECP256R1())),
            nodeAddress="1SatDev",
            certificateLite="true",
        ),
        sat_token(token),
    )
    leaf = check_reply(response, home, tmp_path)[0]
    assert len(leaf.public_bytes(serialization.Encoding.DER)) <= 450

    garbled = client.post("/certificate", {"csr": "AA=="}, "not-a-token")
    assert garbled.status_code == 401 and garbled.json()["error"]["code"] == "malformed_token"


def test_front_speaks_tls_1_2_or_newer_only(dev_server: DevProcess) -> None:
    parts = urlsplit(dev_server.url)
    context = ssl.create_default_context(cafile=str(dev_server.home / "ca/root.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}


def test_libcertifier_cfg_uses_only_keys_v2_2_1_reads(dev_server: DevProcess) -> None:
    home = dev_server.home
    config = json.loads((home / "libcertifier.cfg").read_text())
    assert set(config) <= LIBCERTIFIER_V221_KEYS, set(config) - LIBCERTIFIER_V221_KEYS
    assert config["libcertifier.certifier.url"] == f"{dev_server.url}/v1/certifier"
    assert config["libcertifier.crt.type"] == "X509"
    assert Path(config["libcertifier.keystore"]) == home / "bootstrap/seed.p12"
    assert Path(config["libcertifier.ca.info"]) == home / "ca/root.pem"


@pytest.mark.skipif(
    not (CERTIFIER_UTIL and os.access(CERTIFIER_UTIL, os.X_OK)),
    reason="libCertifier's certifierUtil is not installed (set CERTIFIER_UTIL to use a build)",
)
def test_the_real_libcertifier_client(dev_server: DevProcess, tmp_path: Path) -> None:
    """get-cert with the dev seed and the printed libcertifier.cfg, then status and revoke.

    (renew-cert is left out: the client only calls /renew near expiry.)
    """
    home = dev_server.home
    shutil.copy(home / "libcertifier.cfg", tmp_path / "libcertifier.cfg")  # read from the cwd

    def certifier_util(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CERTIFIER_UTIL), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    seed = str(home / "bootstrap/seed.p12")
    enrolled = certifier_util("get-cert", "-k", seed, "-p", "changeit", "-o", "device.p12")
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    p12 = pkcs12.load_pkcs12((tmp_path / "device.p12").read_bytes(), b"changeit")
    assert p12.cert is not None and len(p12.additional_certs) == 2
    leaf = p12.cert.certificate
    node_address = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert f'"output": "{node_address}"' in enrolled.stdout + enrolled.stderr
    client = DeviceClient(dev_server)
    assert client.status(sha1_hex(leaf)) == "GOOD"

    device = ("-k", "device.p12", "-p", "changeit")
    status = certifier_util("get-cert-status", *device)
    assert "Status: Valid" in status.stdout, status.stdout + status.stderr
    revoked = certifier_util("revoke", *device)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert client.status(sha1_hex(leaf)) == "REVOKED"
    assert "Status: Revoked" in certifier_util("get-cert-status", *device).stdout
