"""e2e_*: devices enrolling concurrently over HTTPS against a real `certplane dev`, through EST
and the Certifier API, with everything recorded and every event emitted.

A fresh `certplane dev` starts in a subprocess (temporary home, free ports); a short warm-up
imports every handler; then the fleet simulator offers `rate` enrollments per second for
`duration` seconds (a share renew and revoke). Afterwards the run is checked against what the
server kept: every acknowledged certificate must be in the inventory with the right status
(management API listing) and in events.jsonl (Certificate Issued / Renewed, and Certificate
Revoked for every revocation), read after a graceful stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from certplane.simulate.runner import FleetOptions, Simulation, verify_inventory
from certplane.simulate.target import Target

GOAL_CERTS_PER_S = 231  # 20M a day, the reference's peak
STARTUP_TIMEOUT_SECONDS = 90
CERTPLANE = Path(sys.executable).parent / "certplane"


@contextmanager
def running_dev(home: Path) -> Iterator[subprocess.Popen[str]]:
    """`certplane dev` on free ports until the block ends (then SIGTERM: a graceful stop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTPLANE_")}
    env["POWERTOOLS_TRACE_DISABLED"] = "1"
    process = subprocess.Popen(
        [str(CERTPLANE), "dev", "--port", "0", "--status-port", "0", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_healthy(process, home)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen[str], home: Path) -> None:
    endpoint = home / "endpoint.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"certplane dev exited: {process.stderr.read() if process.stderr else ''}"
            )
        if endpoint.exists():
            url = json.loads(endpoint.read_text())["url"]
            try:
                if requests.get(f"{url}/health", verify=str(home / "ca/root.pem"), timeout=5).ok:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise RuntimeError("certplane dev did not become healthy")


def events_missing(events_file: Path, acknowledged: list[dict[str, Any]]) -> dict[str, int]:
    """Acknowledged certificates without their event, and revocations without theirs."""
    issued: set[str] = set()
    revoked: set[str] = set()
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        certificate = (event.get("detail") or {}).get("certificate") or {}
        kind = event.get("detail-type")
        if kind in ("Certificate Issued", "Certificate Renewed"):
            issued.add(certificate.get("certificateId", ""))
        elif kind == "Certificate Revoked":
            revoked.add(certificate.get("certificateId", ""))
    return {
        "issued": sum(1 for a in acknowledged if a["certificate_id"] not in issued),
        "revoked": sum(
            1
            for a in acknowledged
            if a["expected_status"] == "REVOKED" and a["certificate_id"] not in revoked
        ),
    }


def measure(
    duration: float = 60.0,
    rate: float = GOAL_CERTS_PER_S,
    concurrency: int = 32,
    renew_fraction: float = 0.1,
    revoke_fraction: float = 0.02,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="certplane-bench-") as folder:
        home = Path(folder) / "home"
        with running_dev(home):
            target = Target.resolve(home=home)
            warm_up = FleetOptions(devices=4, rate=0, renew_fraction=1, revoke_fraction=1)
            Simulation(target, warm_up).run()  # imports every handler: cold starts excluded
            options = FleetOptions(
                devices=int(rate * duration) + 1,
                rate=rate,
                duration=duration,
                protocol="mixed",
                renew_fraction=renew_fraction,
                revoke_fraction=revoke_fraction,
                concurrency=concurrency,
            )
            simulation = Simulation(target, options)
            results = simulation.run()
            inventory = verify_inventory(simulation)
        acknowledged = results.certificate_list()
        missing_events = events_missing(home / "events.jsonl", acknowledged)
    summary = results.summary()
    enroll_and_renew = {
        name: op["latency_ms"]["p50"]
        for name, op in summary["operations"].items()
        if not name.startswith("revoke")
    }
    return {
        "e2e_certs_per_s": summary["certs_per_s"],
        "e2e_p50_ms": summary["latency_ms"]["p50"],
        "e2e_p99_ms": summary["latency_ms"]["p99"],
        "e2e_errors": summary["errors"],
        "e2e_duration_s": summary["duration_s"],
        "e2e_events_missing": missing_events["issued"] + missing_events["revoked"],
        "e2e_records_missing": inventory["missing"],
        "e2e_records_wrong": inventory["wrong_status"] + inventory["wrong_certificate"],
        "e2e_setup": {
            "offered_devices_per_s": rate,
            "concurrency": concurrency,
            "protocol": "mixed (EST Basic / Certifier X509 seed)",
            "renew_fraction": renew_fraction,
            "revoke_fraction": revoke_fraction,
            "devices": summary["devices"],
            "requests": summary["requests"],
            "certificates": summary["certificates"],
            "errors_by_kind": summary["errors_by_kind"],
            "p50_ms_by_operation": enroll_and_renew,
        },
    }
