"""pebble (a test ACME CA) and pebble-challtestsrv (its mock DNS), started on 127.0.0.1 for
the tests that need them, once per test process and lazily.

- pebble-challtestsrv answers every A query with 127.0.0.1 and no AAAA (pebble tries IPv6
  first), serves the TXT records the tests' dns-01 provider sets, and nothing else: its own
  HTTP-01/TLS-ALPN servers are off.
- An in-process HTTP server is the http-01 responder, on the port pebble's config names as
  `httpPort` (the ACME server decides the validation port, not the client). It serves tokens
  put through `put`/`delete` and files under a webroot folder (the engine's `webroot` back end).
- pebble gets a TLS certificate made here for 127.0.0.1 (Debian ships no test certificate),
  the challtestsrv as DNS server, no random VA sleeps, no nonce rejection, no authorization
  reuse, one alternate root (to test chain preference), a 90-day certificate lifetime and a
  blocklisted domain. An EAB-requiring instance is started separately when a test asks.

Every wait is bounded; processes are killed at exit; tests skip if the binaries are absent.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from certbridge.interface import SigningRequest

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
BLOCKED_DOMAIN = "blocked.test"
LIFETIME = datetime.timedelta(days=90)
EAB_KID = "certplane-kid"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (the DNS server binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
            return port


def binaries_or_skip() -> tuple[str, str]:
    pebble, challtestsrv = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    if pebble is None or challtestsrv is None:
        pytest.skip("pebble / pebble-challtestsrv are not installed (Debian package pebble)")
    pytest.importorskip("acme", reason="the acme library is not installed (extra 'acme')")
    return pebble, challtestsrv


# -- TLS for pebble's listeners ---------------------------------------------------------------


def write_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certplane pebble TLS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "tls-ca.pem", folder / "tls-cert.pem", folder / "tls-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- the http-01 responder ---------------------------------------------------------------------


class ChallengeResponder:
    """The http-01 side: an HTTP server on 127.0.0.1 that pebble's VA connects to.

    It is an `Http01Responder` (put/delete) and also serves `<webroot>/.well-known/...`, so
    the engine's own webroot back end is exercised end to end. Every request is recorded.
    """

    def __init__(self, webroot: Path) -> None:
        self.webroot = webroot
        self.tokens: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []  # (Host header, path)
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                responder.requests.append((self.headers.get("Host", ""), self.path))
                body = responder.lookup(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body is not None:
                    self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lookup(self, path: str) -> str | None:
        if not path.startswith(CHALLENGE_PREFIX):
            return None
        token = path.removeprefix(CHALLENGE_PREFIX)
        if token in self.tokens:
            return self.tokens[token]
        file = self.webroot / ".well-known" / "acme-challenge" / token
        if "/" not in token and file.is_file():
            return file.read_text()
        return None

    def put(self, identifier: str, token: str, content: str) -> None:
        self.tokens[token] = content

    def delete(self, identifier: str, token: str) -> None:
        self.tokens.pop(token, None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- processes --------------------------------------------------------------------------------


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class StartFailed(RuntimeError):
    """A server process exited while starting (typically: its port was taken)."""


def _wait_until(ready: Any, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartFailed(f"{what} exited with {process.returncode}: {log.read_text()}")
        if "address already in use" in log.read_text():  # challtestsrv logs it and lives on
            _stop(process)
            raise StartFailed(f"{what} could not bind: {log.read_text()}")
        try:
            if ready():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.05)
    _stop(process)
    raise RuntimeError(f"{what} was not ready after {START_TIMEOUT:g} s: {log.read_text()}")


def _retrying(start: Any, attempts: int = 3) -> Any:
    """A free port can be taken between choosing it and the server binding it (other test
    processes start servers too): a server that exits at start is started again."""
    for attempt in range(attempts):
        try:
            return start()
        except StartFailed:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # local servers: no proxy, and our own CA, not the environment's
    return session


@dataclass
class ChallTestSrv:
    """pebble-challtestsrv: DNS on `dns_port` (UDP+TCP), management API on `management_url`."""

    process: subprocess.Popen[bytes]
    dns_port: int
    management_url: str

    @classmethod
    def start(cls, binary: str, folder: Path) -> ChallTestSrv:
        return _retrying(lambda: cls._start_once(binary, folder))

    @classmethod
    def _start_once(cls, binary: str, folder: Path) -> ChallTestSrv:
        dns_port, management_port = free_port(), free_port()
        log = folder / "challtestsrv.log"
        process = subprocess.Popen(
            [
                binary,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-dns01",
                f"{HOST}:{dns_port}",
                "-management",
                f"{HOST}:{management_port}",
                "-defaultIPv4",
                HOST,
                "-defaultIPv6",
                "",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        url = f"http://{HOST}:{management_port}"
        session = _session()

        def ready() -> bool:
            response = session.post(f"{url}/clear-txt", json={"host": "probe."}, timeout=1)
            return response.status_code == 200

        _wait_until(ready, process, log, "pebble-challtestsrv")
        return cls(process, dns_port, url)

    def txt(self, host: str) -> list[str]:
        """What the mock DNS answers for TXT `host` (a real DNS query over UDP)."""
        return dns_txt_query(host, self.dns_port)


def dns_txt_query(host: str, port: int) -> list[str]:
    """A minimal DNS TXT query (RFC 1035), enough to read challtestsrv's answers."""
    query_id = secrets.randbits(16)
    question = b"".join(
        bytes([len(label)]) + label.encode() for label in host.rstrip(".").split(".")
    )
    packet = query_id.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    packet += question + b"\x00" + b"\x00\x10\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, (HOST, port))
        answer = sock.recv(4096)
    count = int.from_bytes(answer[6:8], "big")
    offset = 12 + len(question) + 1 + 4
    values = []
    for _ in range(count):
        offset += 2 if answer[offset] & 0xC0 == 0xC0 else len(question) + 1  # name
        length = int.from_bytes(answer[offset + 8 : offset + 10], "big")
        data = answer[offset + 10 : offset + 10 + length]
        offset += 10 + length
        values.append(data[1 : 1 + data[0]].decode())
    return values


@dataclass
class Pebble:
    """One pebble process and what a test needs to talk to it."""

    process: subprocess.Popen[bytes]
    directory_url: str
    management_url: str
    tls_ca: Path
    folder: Path
    eab_keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        binary: str,
        folder: Path,
        tls: tuple[Path, Path, Path],
        http_port: int,
        dns_port: int,
        eab_required: bool = False,
    ) -> Pebble:
        return _retrying(
            lambda: cls._start_once(binary, folder, tls, http_port, dns_port, eab_required)
        )

    @classmethod
    def _start_once(
        cls,
        binary: str,
        folder: Path,
        tls: tuple[Path, Path, Path],
        http_port: int,
        dns_port: int,
        eab_required: bool,
    ) -> Pebble:
        folder.mkdir(parents=True, exist_ok=True)
        port, management_port, tls_port = free_port(), free_port(), free_port()
        eab_keys = (
            {EAB_KID: base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")}
            if eab_required
            else {}
        )
        config = {
            "pebble": {
                "listenAddress": f"{HOST}:{port}",
                "managementListenAddress": f"{HOST}:{management_port}",
                "certificate": str(tls[1]),
                "privateKey": str(tls[2]),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": eab_required,
                "externalAccountMACKeys": eab_keys,
                "domainBlocklist": [BLOCKED_DOMAIN],
                "certificateValidityPeriod": int(LIFETIME.total_seconds()),
            }
        }
        config_path = folder / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        log = folder / "pebble.log"
        environment = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
            "PEBBLE_ALTERNATE_ROOTS": "1",
        }
        process = subprocess.Popen(
            [binary, "-config", str(config_path), "-dnsserver", f"{HOST}:{dns_port}"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
        )
        instance = cls(
            process,
            f"https://{HOST}:{port}/dir",
            f"https://{HOST}:{management_port}",
            tls[0],
            folder,
            eab_keys,
        )
        session = _session()

        def ready() -> bool:
            ok = session.get(instance.directory_url, verify=str(tls[0]), timeout=1).ok
            return ok and session.get(instance.management_url + "/roots/0", **instance._tls).ok

        _wait_until(ready, process, log, "pebble")
        return instance

    @property
    def _tls(self) -> dict[str, Any]:
        return {"verify": str(self.tls_ca), "timeout": 5}

    def _get(self, path: str) -> requests.Response:
        response = _session().get(self.management_url + path, **self._tls)
        response.raise_for_status()
        return response

    def root(self, index: int = 0) -> x509.Certificate:
        """Pebble's root of chain `index` (0 is the default chain, 1 the alternate)."""
        return x509.load_pem_x509_certificate(self._get(f"/roots/{index}").content)

    def intermediate(self, index: int = 0) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self._get(f"/intermediates/{index}").content)

    def roots_pem(self, *indexes: int) -> str:
        return "".join(
            self.root(index).public_bytes(serialization.Encoding.PEM).decode()
            for index in indexes or (0,)
        )

    def cert_status(self, serial: int) -> dict[str, Any]:
        """Pebble's record of a certificate: Status "Valid"/"Revoked", Reason."""
        text = serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex()
        return self._get(f"/cert-status-by-serial/{text}").json()

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class PebbleWorld:
    """Everything one test process shares: the mock DNS, the responder, pebble(s)."""

    folder: Path
    binaries: tuple[str, str]
    tls: tuple[Path, Path, Path]
    challtestsrv: ChallTestSrv
    responder: ChallengeResponder
    pebble: Pebble
    _eab: Pebble | None = None

    @property
    def webroot(self) -> Path:
        return self.responder.webroot

    def eab_pebble(self) -> Pebble:
        """A second pebble that requires External Account Binding (started on first use)."""
        if self._eab is None:
            self._eab = Pebble.start(
                self.binaries[0],
                self.folder / "pebble-eab",
                self.tls,
                self.responder.port,
                self.challtestsrv.dns_port,
                eab_required=True,
            )
        return self._eab

    def stop(self) -> None:
        for pebble in (self._eab, self.pebble):
            if pebble is not None:
                pebble.stop()
        _stop(self.challtestsrv.process)
        self.responder.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_lock = threading.Lock()
_world: PebbleWorld | None = None


def pebble_world() -> PebbleWorld:
    """This process's pebble world, started on first use (or pytest.skip if impossible)."""
    global _world
    binaries = binaries_or_skip()
    with _lock:
        if _world is None:
            folder = Path(tempfile.mkdtemp(prefix="certplane-pebble-"))
            started: list[Any] = []
            try:
                tls = write_tls_files(folder)
                responder = ChallengeResponder(folder / "webroot")
                started.append(responder.close)
                challtestsrv = ChallTestSrv.start(binaries[1], folder)
                started.append(lambda: _stop(challtestsrv.process))
                pebble = Pebble.start(
                    binaries[0], folder / "pebble", tls, responder.port, challtestsrv.dns_port
                )
            except BaseException:
                for stop in reversed(started):
                    stop()
                shutil.rmtree(folder, ignore_errors=True)
                raise
            _world = PebbleWorld(folder, binaries, tls, challtestsrv, responder, pebble)
            atexit.register(_world.stop)
        return _world


# -- requests as certplane's policy plans them -------------------------------------------------


def planned_request(
    names: Sequence[str],
    *,
    key: Any = None,
    common_name: str | None = None,
    csr_names: Sequence[str] | None = None,
    profile: str = "server",
    days: int = 30,
    ca_not_after: datetime.datetime | None = None,
) -> SigningRequest:
    """A SigningRequest for DNS names / IP addresses, planned by the default `server` profile,
    with the CSR a device would send (its SANs `csr_names`, by default the same names)."""
    from certplane.config import Settings
    from certplane.policy import plan_certificate

    key = key or ec.generate_private_key(ec.SECP256R1())
    sans = [general_name(name) for name in names]
    common_name = names[0] if common_name is None else common_name
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    settings_profile = Settings.load().tenant_profile("default", profile)
    assert settings_profile is not None
    plan = plan_certificate(
        settings_profile,
        subject=subject,
        requested_sans=sans,
        public_key=key.public_key(),
        ca_not_after=ca_not_after or datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC),
        requested_days=days,
    )
    csr_sans = [general_name(name) for name in (names if csr_names is None else csr_names)]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if csr_sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(csr_sans), critical=False)
    csr = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    return SigningRequest(
        serial_number=x509.random_serial_number(),
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
        csr_der=csr.public_bytes(serialization.Encoding.DER),
    )


def general_name(name: str) -> x509.GeneralName:
    """An IP address, a URN (`urn:`…) or a DNS name, by its spelling."""
    if name.startswith("urn:"):
        return x509.UniformResourceIdentifier(name)
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


# -- the engine contract suite ------------------------------------------------------------------

# What the contract suite (tests/service/test_engine_contract.py) would need to hold an ACME
# engine: requests with DNS names (a public CA certifies nothing else), and one excused
# assertion — pebble 2.4 decides the leaf's extensions itself (keyUsage keyEncipherment on EC
# keys, serverAuth+clientAuth), so pkilint and `openssl verify -x509_strict` cannot pass on it.
CONTRACT_DNS_NAMES = ("contract-device.certplane.test",)
CONTRACT_GAPS = frozenset({"pkix_profile"})
CONTRACT_PASSPHRASE_ENV = "CERTPLANE_CONTRACT_ACME_PASSPHRASE"


def contract_engine(tmp_path: Path) -> Any:
    """An ACME engine on this process's pebble, for the contract suite."""
    from certbridge.engines.acme import AcmeCAEngine

    world = pebble_world()
    os.environ.setdefault(CONTRACT_PASSPHRASE_ENV, secrets.token_urlsafe(24))
    return AcmeCAEngine(
        "contract-acme",
        world.pebble.directory_url,
        str(tmp_path / "acme-state"),
        roots_pem=world.pebble.roots_pem(0),
        passphrase_env=CONTRACT_PASSPHRASE_ENV,
        agree_to_terms=True,
        http01_responder=world.responder,
        ca_bundle=str(world.pebble.tls_ca),
        request_validity=True,
        poll_interval_seconds=0.02,
        timeout_seconds=20,
    )
