"""EST against a real `certplane dev`, with curl and openssl as the only client (issue 3 part B).

No EST client package exists (notes/facts.md), so the client side is what an operator would
type: `openssl req` makes keys and CSRs, `openssl base64` encodes them, curl speaks HTTPS with
Basic credentials or a client certificate, and openssl decodes and verifies every answer.
Python only reads files, strips base64 and parses the multipart reply with its email package.
"""

from __future__ import annotations

import base64
import email
import hashlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.conftest import DevProcess

pytestmark = pytest.mark.e2e
EST = "/.well-known/est"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    server = DevProcess(tmp_path_factory.mktemp("est") / "home").start()
    yield server
    server.stop()


def run(*command: str | Path, input: bytes | None = None) -> bytes:
    result = subprocess.run(
        [str(part) for part in command], input=input, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (command, result.stderr.decode(errors="replace"))
    return result.stdout


@dataclass
class CurlReply:
    status: int
    headers: Message
    head: bytes
    body: bytes

    def der(self) -> bytes:
        """The body stripped to the base64 alphabet and decoded."""
        return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", self.body))


class Curl:
    """curl against the dev server, trusting only its root; each reply kept on disk."""

    def __init__(self, dev: DevProcess, folder: Path) -> None:
        self.dev = dev
        self.folder = folder
        self.count = 0

    def __call__(self, path: str, *options: str | Path) -> CurlReply:
        self.count += 1
        head, body = self.folder / f"{self.count}.head", self.folder / f"{self.count}.body"
        status = run(
            "curl", "--silent", "--show-error",
            "--cacert", self.dev.home / "ca/root.pem",
            "--dump-header", head, "--output", body, "--write-out", "%{http_code}",
            *options, f"{self.dev.url}{EST}/{path}",
        )  # fmt: skip
        raw_head = head.read_bytes()
        _status_line, _, fields = raw_head.partition(b"\r\n")
        headers = email.message_from_bytes(fields)  # compat32: header values as sent
        return CurlReply(int(status), headers, raw_head, body.read_bytes())


@pytest.fixture
def curl(dev: DevProcess, tmp_path: Path) -> Curl:
    return Curl(dev, tmp_path)


def est_user(dev: DevProcess) -> str:
    return (dev.home / "bootstrap/est-credentials").read_text().strip()


def new_csr(folder: Path, name: str, subject: str) -> tuple[Path, Path]:
    """(key, base64 CSR) made by `openssl req` and `openssl base64`."""
    key, der, b64 = folder / f"{name}.key", folder / f"{name}.der", folder / f"{name}.b64"
    run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key, "-subj", subject, "-outform", "DER", "-out", der,
    )  # fmt: skip
    run("openssl", "base64", "-in", der, "-out", b64)
    return key, b64


def post_csr(b64: Path) -> tuple[str, ...]:
    return ("--header", "Content-Type: application/pkcs10", "--data-binary", f"@{b64}")


def print_certs(folder: Path, name: str, der: bytes) -> Path:
    """`openssl pkcs7 -print_certs` of a certs-only DER; returns the PEM file it wrote."""
    p7, pem = folder / f"{name}.p7b", folder / f"{name}.pem"
    p7.write_bytes(der)
    run("openssl", "pkcs7", "-inform", "DER", "-in", p7, "-print_certs", "-out", pem)
    return pem


def verify_strict(dev: DevProcess, certificate: Path) -> None:
    out = run(
        "openssl", "verify", "-x509_strict",
        "-CAfile", dev.home / "ca/root.pem", "-untrusted", dev.home / "ca/chain.pem",
        certificate,
    )  # fmt: skip
    assert out.decode().strip() == f"{certificate}: OK"


def subject_of(certificate: Path) -> str:
    return run("openssl", "x509", "-in", certificate, "-noout", "-subject").decode().strip()


def certificate_id(pem: Path) -> str:
    der = run("openssl", "x509", "-in", pem, "-outform", "DER")
    return hashlib.sha1(der).hexdigest()


def issued_count(dev: DevProcess) -> int:
    return len(dev.cli_json("cert", "list", "--all")["items"])


def assert_enrolled(reply: CurlReply) -> None:
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"


# -- tests --------------------------------------------------------------------------------


def test_cacerts(dev: DevProcess, curl: Curl, tmp_path: Path) -> None:
    reply = curl("cacerts")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/pkcs7-mime"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"
    pem = print_certs(tmp_path, "cacerts", reply.der())
    printed = x509.load_pem_x509_certificates(pem.read_bytes())
    chain = x509.load_pem_x509_certificates((dev.home / "ca/chain.pem").read_bytes())
    assert set(printed) == set(chain) and len(printed) == 2


def test_simpleenroll_with_basic_then_simplereenroll_with_the_client_certificate(
    dev: DevProcess, curl: Curl, tmp_path: Path
) -> None:
    key, csr = new_csr(tmp_path, "first", "/CN=est-curl-0001")
    reply = curl("simpleenroll", "--user", est_user(dev), *post_csr(csr))
    assert_enrolled(reply)
    # The body is what `openssl base64 -d` (or coreutils `base64 -d`) takes as it comes.
    assert run("openssl", "base64", "-d", input=reply.body) == reply.der()
    first = print_certs(tmp_path, "first-cert", reply.der())
    verify_strict(dev, first)
    assert subject_of(first) == "subject=CN = est-curl-0001"

    new_key, new_csr_b64 = new_csr(tmp_path, "second", "/CN=est-curl-0001")
    renewed = curl("simplereenroll", "--cert", first, "--key", key, *post_csr(new_csr_b64))
    assert_enrolled(renewed)
    second = print_certs(tmp_path, "second-cert", renewed.der())
    verify_strict(dev, second)
    assert subject_of(second) == subject_of(first)
    new_public = run("openssl", "pkey", "-in", new_key, "-pubout")
    assert run("openssl", "x509", "-in", second, "-noout", "-pubkey") == new_public

    old = dev.cli_json("cert", "show", certificate_id(first))
    current = dev.cli_json("cert", "show", certificate_id(second))
    assert (old["status"], current["status"]) == ("SUPERSEDED", "ISSUED")
    assert current["renewed_from"] == old["serial"] and old["superseded_by"] == current["serial"]
    assert current["requester"] == f"est-certificate:{certificate_id(first)}"

    # The superseded certificate no longer authenticates a re-enrollment.
    _, third_csr = new_csr(tmp_path, "third", "/CN=est-curl-0001")
    again = curl("simplereenroll", "--cert", first, "--key", key, *post_csr(third_csr))
    assert again.status == 401


def test_simpleenroll_with_the_seed_as_client_certificate(
    dev: DevProcess, curl: Curl, tmp_path: Path
) -> None:
    bootstrap = dev.home / "bootstrap"
    _, csr = new_csr(tmp_path, "seeded", "/CN=est-seeded-0001")
    reply = curl(
        "simpleenroll", "--cert", bootstrap / "seed.pem", "--key", bootstrap / "seed.key",
        *post_csr(csr),
    )  # fmt: skip
    assert_enrolled(reply)
    certificate = print_certs(tmp_path, "seeded-cert", reply.der())
    verify_strict(dev, certificate)
    seed_id = certificate_id(bootstrap / "seed.pem")
    assert dev.cli_json("cert", "show", certificate_id(certificate))["requester"] == (
        f"est-seed:{seed_id}"
    )


def test_csrattrs(curl: Curl, tmp_path: Path) -> None:
    reply = curl("csrattrs")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/csrattrs"
    parsed = run("openssl", "asn1parse", "-inform", "DER", input=reply.der()).decode()
    for name in ("id-ecPublicKey", "prime256v1", "secp384r1", "ecdsa-with-SHA256"):
        assert name in parsed, parsed
    compact = run("openssl", "asn1parse", "-inform", "DER", input=curl("compact/csrattrs").der())
    assert "secp384r1" not in compact.decode() and "prime256v1" in compact.decode()


def test_serverkeygen(dev: DevProcess, curl: Curl, tmp_path: Path) -> None:
    _, csr = new_csr(tmp_path, "hint", "/CN=est-keyless-0001")
    reply = curl("serverkeygen", "--user", est_user(dev), *post_csr(csr))
    assert reply.status == 200, reply.body
    message = email.message_from_bytes(reply.head.partition(b"\r\n")[2] + reply.body)
    assert message.get_content_type() == "multipart/mixed"
    parts = {part.get_content_type(): part for part in message.get_payload()}
    assert set(parts) == {"application/pkcs8", "application/pkcs7-mime"}
    assert all(p["Content-Transfer-Encoding"] == "base64" for p in parts.values())
    assert parts["application/pkcs7-mime"].get_param("smime-type") == "certs-only"

    key = tmp_path / "server-made.der"
    key.write_bytes(parts["application/pkcs8"].get_payload(decode=True))
    certificate = print_certs(
        tmp_path, "keyless", parts["application/pkcs7-mime"].get_payload(decode=True)
    )
    verify_strict(dev, certificate)
    assert subject_of(certificate) == "subject=CN = est-keyless-0001"
    public = run("openssl", "pkey", "-inform", "DER", "-in", key, "-pubout")
    assert run("openssl", "x509", "-in", certificate, "-noout", "-pubkey") == public
    hint_public = run("openssl", "pkey", "-in", tmp_path / "hint.key", "-pubout")
    assert public != hint_public

    # The key is in the reply only: no event and no inventory view carries it.
    key_b64 = base64.b64encode(key.read_bytes()).decode()
    events = (dev.home / "events.jsonl").read_text()
    assert key_b64[:40] not in events and "PRIVATE KEY" not in events
    view = dev.cli("cert", "show", certificate_id(certificate), "--json").stdout
    assert key_b64[:40] not in view


def test_401_without_or_with_wrong_credentials(dev: DevProcess, curl: Curl, tmp_path: Path) -> None:
    before = issued_count(dev)
    _, csr = new_csr(tmp_path, "nobody", "/CN=est-nobody")
    user = est_user(dev).partition(":")[0]
    for credentials in ((), ("--user", f"{user}:wrong-password")):
        reply = curl("simpleenroll", *credentials, *post_csr(csr))
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="certplane EST"'
        assert reply.headers.get_content_type() == "text/plain"
    assert issued_count(dev) == before


def test_a_client_certificate_from_an_unknown_ca_fails_the_handshake(
    dev: DevProcess, tmp_path: Path
) -> None:
    """The dev front trusts client certificates from its own chain and the bootstrap CA only,
    as an API Gateway mTLS truststore would: curl fails before any HTTP is exchanged."""
    ca_key, ca = tmp_path / "rogue-ca.key", tmp_path / "rogue-ca.pem"
    run(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=Rogue CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign",
    )  # fmt: skip
    client_key, client_csr = tmp_path / "rogue.key", tmp_path / "rogue.csr"
    run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", client_key, "-out", client_csr, "-subj", "/CN=seed-0001",
    )  # fmt: skip
    client = tmp_path / "rogue.pem"
    run(
        "openssl", "x509", "-req", "-in", client_csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "30", "-out", client,
    )  # fmt: skip
    before = issued_count(dev)
    _, csr = new_csr(tmp_path, "rogue-request", "/CN=est-rogue")
    result = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--cacert", str(dev.home / "ca/root.pem"),
            "--cert", str(client), "--key", str(client_key), "--user", est_user(dev),
            *post_csr(csr), f"{dev.url}{EST}/simpleenroll",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert issued_count(dev) == before
