"""`certplane dev`: embedded AWS, the Lambda handlers in process, and an HTTPS front.

Start order matters: the journal hooks botocore before any client exists, moto starts and is
provisioned from the resource specs, the journal restores what was acknowledged before, and
only then are handlers imported and the port opened.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import signal
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certplane.dev.aws import ACCOUNT_ID, REGION, EmbeddedAws
from certplane.dev.bootstrap import prepare_bootstrap
from certplane.dev.connectors import DevConnectors
from certplane.dev.examples import est_example, libcertifier_config
from certplane.dev.front import DevHttpServer
from certplane.dev.home import DevHome, write_secret
from certplane.dev.journal import Journal
from certplane.dev.lambda_host import LambdaHost
from certplane.dev.status_front import StatusHttpServer
from certplane.dev.workflows import DevWorkflows
from certplane.lifecycle import IssueRequest
from certplane.resources import CA_DIR_ENV, CONFIG_ENV, EVENT_BUS, FunctionSpec
from certplane.runtime import build_runtime
from certplane.status.ocsp_signer import OCSP_DIR_ENV
from certplane.status.service import build_status
from certplane.status.urls import STATUS_URL_ENV

logger = logging.getLogger(__name__)

TLS_PROFILE = "server"
TLS_RENEW_BEFORE = datetime.timedelta(days=7)
# How often due CRLs are regenerated (the debounce of revocation → CRL); EventBridge
# Scheduler plays this part in AWS.
CRL_PUBLISH_INTERVAL_SECONDS = 2.0


def _fsync_lines(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)
        handle.flush()
        os.fsync(handle.fileno())


class DevServer:
    """One `certplane dev` process bound to one home folder."""

    def __init__(
        self,
        home: Path,
        host: str = "127.0.0.1",
        port: int = 8443,
        config: Path | None = None,
        announce: Callable[[str], None] = print,
        status_port: int = 8080,
    ) -> None:
        self.home = DevHome(home.expanduser().resolve())
        self.host = host
        self.port = port
        self.status_port = status_port
        self.status_httpd: StatusHttpServer | None = None
        self._status_thread: threading.Thread | None = None
        self.config = config
        self.announce = announce
        self.httpd: DevHttpServer | None = None
        self.connectors: DevConnectors | None = None
        self._stopping = threading.Event()

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        self.home.create()
        self.journal = Journal(self.home.state)
        self.journal.install()
        os.environ[CA_DIR_ENV] = str(self.home.engines_dir)
        os.environ[OCSP_DIR_ENV] = str(self.home.root / "ocsp")
        if self.config:
            os.environ[CONFIG_ENV] = str(self.config.resolve())
        # The status port is bound first: its URL goes into every certificate issued.
        self.status_httpd = StatusHttpServer(
            (self.host, self.status_port),
            lambda spec, event: self._invoke(spec, event),
            lambda key: self._fetch_status(key),
        )
        self.status_port = self.status_httpd.server_address[1]
        self.status_url = f"http://{self._url_host()}:{self.status_port}"
        os.environ[STATUS_URL_ENV] = self.status_url
        self.aws = EmbeddedAws()
        self.aws.start()
        replayed = self.journal.restore(self.aws.table_names)
        self.journal.compact(self.aws.table_names)
        logger.info("restored state (%d journal writes replayed)", replayed)
        self.runtime = build_runtime()
        self.connectors = self._start_connectors()
        self.status = build_status(self.runtime)
        self.status.crl.publish_due(force=True)  # the bucket is fresh: publish everything
        self._export_ca()
        token = self._admin_token()
        self.bootstrap = prepare_bootstrap(
            self.home.bootstrap, self.runtime.settings.tenants[0].id, self.runtime.credentials
        )
        context = self._tls_context()
        self.lambdas = LambdaHost(ACCOUNT_ID, REGION)
        self.workflows = DevWorkflows(self._invoke, self.runtime.settings, self._stopping)
        self.workflows.start()
        self._record_events()
        self.httpd = DevHttpServer((self.host, self.port), self._invoke, context)
        self.port = self.httpd.server_address[1]
        url = f"https://{self._url_host()}:{self.port}"
        self._start_status()
        endpoint = {"url": url, "ca_file": str(self.home.root_pem), "status_url": self.status_url}
        self.home.endpoint.write_text(json.dumps(endpoint, indent=2) + "\n")
        self._announce(url, token)

    def _start_status(self) -> None:
        """Serve the status port and regenerate due CRLs in the background."""
        assert self.status_httpd is not None
        threading.Thread(
            target=self.status_httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        ).start()
        self._status_thread = threading.Thread(target=self._publish_loop, daemon=True)
        self._status_thread.start()

    def _publish_loop(self) -> None:
        while not self._stopping.wait(CRL_PUBLISH_INTERVAL_SECONDS):
            with self.lambdas.lock:
                try:
                    self.status.crl.publish_due()
                finally:
                    self._record_events()

    def _fetch_status(self, key: str) -> tuple[bytes, str, str] | None:
        with self.lambdas.lock:
            return self.status.store.get(key)

    def _url_host(self) -> str:
        if self.host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _announce(self, url: str, token: str) -> None:
        lines = [
            f"certplane dev is serving on {url}",
            f"  management API  {url}/v1/certificates",
            f"  OpenAPI         {url}/v1/openapi.json",
            f"  health          {url}/health",
            f"  status (HTTP)   {self.status_url}/crl/<ca>/<shard>.crl  {self.status_url}/ocsp",
            f"  root CA         {self.home.root_pem}",
            f"  chain           {self.home.chain_pem}",
            f"  admin token     {self.home.admin_token}",
            f"  events          {self.home.events}",
            f"  token prefix    {token[:6]}…",
            f"  Certifier API   {url}/v1/certifier   (libCertifier)",
            f"  EST             {url}/.well-known/est/",
            f"  bootstrap       {self.home.bootstrap}",
            "",
            est_example(url, self.home, self.bootstrap),
            "",
            f"libcertifier.cfg ({self.home.root / 'libcertifier.cfg'}):",
            libcertifier_config(url, self.home, self.bootstrap),
        ]
        (self.home.root / "libcertifier.cfg").write_text(
            libcertifier_config(url, self.home, self.bootstrap) + "\n"
        )
        self.announce("\n".join(lines))

    def _export_ca(self) -> None:
        """Publish the default CA's root and chain (issuing CA first) for clients."""
        first_ca = self.runtime.settings.cas[0].id
        chain = self.runtime.lifecycle.router.engine(first_ca).chain()
        pem = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
        self.home.root_pem.write_text(pem[-1])
        self.home.chain_pem.write_text("".join(pem))

    def _admin_token(self) -> str:
        """Reuse the token in the home (re-registering its hash) or create the first one."""
        tenant = self.runtime.settings.tenants[0].id
        if self.home.admin_token.exists():
            token = self.home.admin_token.read_text().strip()
            if self.runtime.credentials.authenticate_token(token) is None:
                self.runtime.credentials.register_token(token, tenant, "admin")
            return token
        token = self.runtime.credentials.create_token(tenant, "admin")
        write_secret(self.home.admin_token, token + "\n")
        return token

    def _tls_context(self) -> ssl.SSLContext:
        if not self._tls_certificate_usable():
            self._issue_tls_certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.home.tls_cert, self.home.tls_key)
        # Client certificates are optional (the doors decide) and must chain to a device CA
        # or a bootstrap CA, as an API Gateway mTLS truststore would require.
        trust = self.home.root / "tls" / "client-trust.pem"
        router = self.runtime.lifecycle.router
        chains = [
            certificate.public_bytes(serialization.Encoding.PEM).decode()
            for engine_id in router.engine_ids
            for certificate in router.engine(engine_id).chain()
        ]
        trust.write_text("".join(dict.fromkeys(chains)) + self.bootstrap.ca_pem.read_text())
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(trust))
        return context

    def _tls_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        try:
            address = ipaddress.ip_address(self.host)
            if not address.is_unspecified and x509.IPAddress(address) not in names:
                names.append(x509.IPAddress(address))
        except ValueError:
            if self.host and self.host != "localhost":
                names.append(x509.DNSName(self.host))
        return names

    def _tls_certificate_usable(self) -> bool:
        if not (self.home.tls_cert.exists() and self.home.tls_key.exists()):
            return False
        certificate = x509.load_pem_x509_certificates(self.home.tls_cert.read_bytes())[0]
        remaining = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return remaining > TLS_RENEW_BEFORE and all(name in sans for name in self._tls_names())

    def _issue_tls_certificate(self) -> None:
        """The front's own certificate goes through the lifecycle like any other."""
        settings = self.runtime.settings
        tenant = next((t.id for t in settings.tenants if TLS_PROFILE in t.profiles), None)
        if tenant is None:
            raise SystemExit(f"no tenant may use the {TLS_PROFILE!r} profile for the dev front")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .add_extension(x509.SubjectAlternativeName(self._tls_names()), critical=False)
            .sign(key, hashes.SHA256())
        )
        record = self.runtime.lifecycle.issue(
            IssueRequest(
                tenant=tenant,
                profile=TLS_PROFILE,
                csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
                requester="certplane-dev",
                device_id="certplane-dev-front",
                owner="certplane-dev",
            )
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        write_secret(self.home.tls_key, key_pem)
        self.home.tls_cert.write_text((record.certificate_pem or "") + (record.chain_pem or ""))

    # -- serving --------------------------------------------------------------------------

    def _invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
        with self.lambdas.lock:
            try:
                return self.lambdas.invoke(spec, event)
            finally:
                self._record_events()

    def _record_events(self) -> None:
        """Move what the bus delivered to the dev tap into events.jsonl (fsynced), then let
        the configured connectors deliver what their queues hold."""
        events = self.aws.drain_event_tap()
        if events:
            _fsync_lines(self.home.events, [json.dumps(e, separators=(",", ":")) for e in events])
        if self.connectors is not None:
            try:
                self.connectors.deliver_pending()
            except Exception:  # a connector problem never fails the developer's request
                logger.exception("connector delivery failed")

    def _start_connectors(self) -> DevConnectors | None:
        """Rules, queues and in-process delivery for each `[[connectors]]` entry."""
        configs = self.runtime.settings.connectors
        if not configs:
            return None
        connectors = DevConnectors(
            configs,
            sqs=boto3.client("sqs"),
            events=boto3.client("events"),
            secrets=boto3.client("secretsmanager"),
            bus_name=os.environ[EVENT_BUS.env_var],
        )
        self.announce("connectors: " + ", ".join(f"{c.name} ({c.type})" for c in configs))
        return connectors

    def serve_forever(self) -> None:
        assert self.httpd is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.request_stop())
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.stop()

    def request_stop(self) -> None:
        if not self._stopping.is_set() and self.httpd is not None:
            self._stopping.set()
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()

    def stop(self) -> None:
        """Graceful stop: no new requests, wait for the running one, compact state."""
        self._stopping.set()
        if self._status_thread is not None:  # serving started: stop the loop, then close
            assert self.status_httpd is not None
            self.status_httpd.shutdown()
            self._status_thread.join(timeout=30)
        if self.status_httpd is not None:
            self.status_httpd.server_close()
        if self.httpd is not None:
            self.httpd.server_close()
        with self.lambdas.lock:
            self._record_events()
            self.journal.compact(self.aws.table_names)
        self.aws.stop()
        self.announce("certplane dev stopped; state saved")
