"""Issue 3 part C: the `compact` profile's P-256 device certificates stay at most 450 bytes DER
while passing pkilint (no findings at WARNING) and `openssl verify -x509_strict`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.errors import RequestRejected
from certplane.lifecycle import IssueRequest

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
LINT_CHAIN = Path(sys.executable).with_name("lint_pkix_signer_signee_cert_chain")
MAX_DER_BYTES = 450
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")


def _issue(lifecycle, csrs, common_name: str, profile: str = "compact") -> x509.Certificate:
    key = csrs.key("P-256", fresh=True)
    record = lifecycle.issue(
        IssueRequest(
            tenant="default",
            profile=profile,
            csr=csrs.pem(key=key, common_name=common_name),
            requester="tests",
        )
    )
    return x509.load_pem_x509_certificate(record.certificate_pem.encode())


def test_compact_certificates_fit_450_bytes_with_the_longest_allowed_name(lifecycle, csrs):
    # ECDSA signatures and serials vary in length: issue several with the longest CN allowed.
    sizes = [
        len(_issue(lifecycle, csrs, "n" * 32).public_bytes(serialization.Encoding.DER))
        for _ in range(12)
    ]
    assert max(sizes) <= MAX_DER_BYTES, sizes
    longer = _issue(lifecycle, csrs, "n" * 32, profile="device")
    assert len(longer.public_bytes(serialization.Encoding.DER)) > max(sizes)


def test_compact_certificate_passes_pkilint_and_openssl(lifecycle, csrs, tmp_path):
    certificate = _issue(lifecycle, csrs, "node-00a1b2c3d4e5")
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca = tmp_path / "ca-local-dev"

    lint = subprocess.run(
        [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(leaf)],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout
    pair = subprocess.run(
        [str(LINT_CHAIN), "lint", "-s", "WARNING", str(ca / "issuing.pem"), str(leaf)],
        capture_output=True,
        text=True,
    )
    assert pair.returncode == 0, pair.stdout
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(ca / "root.pem"),
            "-untrusted",
            str(ca / "issuing.pem"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": OK"), verify.stderr


def test_compact_profile_refuses_other_curves_and_long_names(lifecycle, csrs):
    for kind, name, code in (
        ("P-384", "node-1", "unsupported_key"),
        ("P-256", "n" * 33, "subject_not_allowed"),
    ):
        with pytest.raises(RequestRejected) as caught:
            lifecycle.issue(
                IssueRequest(
                    tenant="default", profile="device-lite", csr=csrs.pem(kind, name), requester="t"
                )
            )
        assert caught.value.code == code
