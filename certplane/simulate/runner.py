"""Runs a fleet: devices start at a fixed rate on a thread pool, each enrolls, then renews and
revokes as planned.

Arrivals are open-loop (device i is due at i / rate seconds) but bounded: at most
`concurrency` devices are in flight, so a server slower than the offered rate slows the starts
instead of piling up threads, and the achieved rate shows it. A rate of 0 starts devices as
fast as the pool frees up (closed loop). The run stops starting devices after `devices` of
them or after `duration` seconds, whichever comes first, and waits for those in flight.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certplane.simulate.certifier import CertifierClient
from certplane.simulate.checks import certificate_id, check_certificate, sha256_fingerprint
from certplane.simulate.est import EstClient, est_cacerts
from certplane.simulate.fleet import (
    Device,
    DevicePlan,
    Operation,
    Protocol,
    plan_fleet,
    run_prefix,
)
from certplane.simulate.http import Http, RequestFailed
from certplane.simulate.management import Management
from certplane.simulate.results import Acknowledged, Exchange, RunResults
from certplane.simulate.target import Target, TargetError

Progress = Callable[[RunResults], None]
Issue = Callable[[], tuple[x509.Certificate, float]]


@dataclass(frozen=True)
class FleetOptions:
    devices: int
    rate: float
    duration: float | None = None
    protocol: str = "mixed"
    renew_fraction: float = 0.0
    revoke_fraction: float = 0.0
    concurrency: int = 16
    profile: str | None = None  # EST label / Certifier profileName; None: tenant default
    est_auth: str = "basic"  # or "seed": the factory certificate as TLS client certificate
    prefix: str | None = None


class Simulation:
    def __init__(self, target: Target, options: FleetOptions) -> None:
        self.target = target
        self.options = options
        self.http = Http(target.url, target.verify)
        self.results = RunResults()
        self._check_target()
        self.est = self._est_client() if options.protocol in ("est", "mixed") else None
        self.certifier = (
            CertifierClient(self.http, target.seed, options.profile)  # type: ignore[arg-type]
            if options.protocol in ("certifier", "mixed")
            else None
        )
        self.management = Management(self.http, target.token) if target.token else None
        self._issuers: list[x509.Certificate] = []
        self._folder = tempfile.TemporaryDirectory(prefix="certplane-simulate-")

    def _check_target(self) -> None:
        options, target = self.options, self.target
        uses_est = options.protocol in ("est", "mixed")
        if options.protocol in ("certifier", "mixed") and target.seed is None:
            raise TargetError("the Certifier API needs a seed: pass --bootstrap")
        if uses_est and options.est_auth == "basic" and not target.est_user:
            raise TargetError("EST with Basic needs est-credentials: pass --bootstrap")
        if uses_est and options.est_auth == "seed" and target.seed is None:
            raise TargetError("EST with a seed needs seed.pem and seed.key: pass --bootstrap")
        if uses_est and options.revoke_fraction > 0 and not target.token:
            raise TargetError("EST devices are revoked through the management API: pass --token")

    def _est_client(self) -> EstClient:
        target = self.target
        if self.options.est_auth == "seed":
            return EstClient(self.http, label=self.options.profile, seed=target.seed)
        assert target.est_user is not None and target.est_password is not None
        return EstClient(
            self.http, label=self.options.profile, basic=(target.est_user, target.est_password)
        )

    # -- running --------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> RunResults:
        """Start the fleet, wait for every device, return what happened."""
        options = self.options
        self._issuers = self._cacerts()
        plans = plan_fleet(
            options.devices,
            options.protocol,
            options.renew_fraction,
            options.revoke_fraction,
            options.prefix or run_prefix(),
        )
        slots = threading.BoundedSemaphore(options.concurrency)
        results = self.results
        with self._folder, ThreadPoolExecutor(options.concurrency) as pool:
            results.started_at = start = time.perf_counter()
            deadline = start + options.duration if options.duration else None
            for plan in plans:
                due = start + plan.index / options.rate if options.rate > 0 else start
                if deadline is not None and due >= deadline:
                    break
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                slots.acquire()
                if deadline is not None and time.perf_counter() >= deadline:
                    slots.release()  # a slow server: the starts fell behind the schedule
                    break
                results.devices_started += 1
                future = pool.submit(self._device, plan)
                future.add_done_callback(lambda _: self._finished(slots, progress))
        results.finished_at = time.perf_counter()
        return results

    def _finished(self, slots: threading.BoundedSemaphore, progress: Progress | None) -> None:
        self.results.device_finished()
        slots.release()
        if progress is not None:
            progress(self.results)

    def _cacerts(self) -> list[x509.Certificate]:
        """The CAs that may sign device certificates (EST cacerts needs no credentials)."""
        try:
            return est_cacerts(self.http, self.options.profile)
        except RequestFailed as error:
            raise TargetError(f"cannot read the server's CA certificates: {error}") from None

    def _device(self, plan: DevicePlan) -> None:
        """One device's life; the first failure ends it (later steps need its certificate)."""
        device = Device(plan)
        try:
            self._enroll(device)
            if plan.renew:
                self._renew(device)
            if plan.revoke:
                self._revoke(device)
        except RequestFailed:
            pass  # recorded by _step
        except Exception as error:  # a simulator bug must show up as an error, not vanish
            self.results.add(Exchange(Operation.ENROLL, plan.protocol, 0.0, type(error).__name__))

    def _step(self, device: Device, operation: Operation, call: Issue) -> x509.Certificate:
        protocol = device.plan.protocol
        try:
            certificate, seconds = call()
        except RequestFailed as error:
            self.results.add(Exchange(operation, protocol, error.seconds, error.kind))
            raise
        try:
            check_certificate(certificate, device.key, self._issuers)
        except RequestFailed as error:
            self.results.add(Exchange(operation, protocol, seconds, error.kind))
            raise
        acknowledged = Acknowledged(
            certificate_id=certificate_id(certificate),
            sha256=sha256_fingerprint(certificate),
            device=device.plan.name,
            protocol=protocol,
            operation=operation,
        )
        self.results.add(Exchange(operation, protocol, seconds), acknowledged)
        return certificate

    def _enroll(self, device: Device) -> None:
        client = self.est if device.plan.protocol == Protocol.EST else self.certifier
        assert client is not None
        device.certificate = self._step(device, Operation.ENROLL, lambda: client.enroll(device))

    def _renew(self, device: Device) -> None:
        assert device.certificate is not None
        previous = certificate_id(device.certificate)
        if device.plan.protocol == Protocol.EST:
            assert self.est is not None
            files = self._tls_identity(device)
            call = lambda: self.est.reenroll(device, files)  # noqa: E731
        else:
            assert self.certifier is not None
            call = lambda: self.certifier.renew(device)  # noqa: E731
        device.certificate = self._step(device, Operation.RENEW, call)
        self.results.mark(previous, "SUPERSEDED")

    def _revoke(self, device: Device) -> None:
        assert device.certificate is not None
        current = certificate_id(device.certificate)
        protocol = device.plan.protocol
        try:
            if protocol == Protocol.EST:
                assert self.management is not None
                seconds = self.management.revoke(current)
            else:
                assert self.certifier is not None
                seconds = self.certifier.revoke(device)
        except RequestFailed as error:
            self.results.add(Exchange(Operation.REVOKE, protocol, error.seconds, error.kind))
            raise
        self.results.add(Exchange(Operation.REVOKE, protocol, seconds))
        self.results.mark(current, "REVOKED")

    def _tls_identity(self, device: Device) -> tuple[Path, Path]:
        """The device's certificate and key as files, for TLS client authentication."""
        assert device.certificate is not None
        folder = Path(self._folder.name)
        certificate_file = folder / f"{device.plan.name}.pem"
        key_file = folder / f"{device.plan.name}.key"
        certificate_file.write_bytes(device.certificate.public_bytes(serialization.Encoding.PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            device.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return certificate_file, key_file


def verify_inventory(simulation: Simulation) -> dict[str, int]:
    """Every acknowledged certificate is in the inventory, with the status the run left it in
    and the fingerprint of the certificate the device received."""
    if simulation.management is None:
        raise TargetError("checking the inventory needs a management token: pass --token")
    expected = {a["certificate_id"]: a for a in simulation.results.certificate_list()}
    found = wrong_status = wrong_certificate = 0
    for item in simulation.management.certificates():
        wanted = expected.get(item.get("certificate_id") or "")
        if wanted is None:
            continue
        found += 1
        if item.get("status") != wanted["expected_status"]:
            wrong_status += 1
        if item.get("sha256_fingerprint") != wanted["sha256"]:
            wrong_certificate += 1
    return {
        "checked": len(expected),
        "missing": len(expected) - found,
        "wrong_status": wrong_status,
        "wrong_certificate": wrong_certificate,
    }
