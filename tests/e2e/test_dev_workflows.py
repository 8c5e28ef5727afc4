"""The workflows in a real `certplane dev`, driven by the CLI: bulk revoke, approvals, sweep.

The dev server creates the same state machine definitions in its embedded moto and runs the
real step handlers; these tests see only what a user sees (CLI output, the API, events.jsonl).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.e2e.conftest import DevProcess, openssl_csr

GATED_PROFILE = """
[workflows]
retry_interval_seconds = 1
dev_sweep_interval_minutes = 0

[[profiles]]
name = "gated"
description = "Device certificates a person approves"
requires_approval = true
max_validity_days = 365
default_validity_days = 30
route = ["local-dev"]
"""


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    default = resources.files("certplane").joinpath("defaults/certplane.toml").read_text()
    config = tmp_path / "certplane.toml"
    tenants = 'profiles = ["device", "server", "compact", "pqc", "short-lived"]'
    assert tenants in default
    config.write_text(
        default.replace(tenants, tenants.replace('"device",', '"device", "gated",')) + GATED_PROFILE
    )
    server = DevProcess(tmp_path / "home", ("--config", str(config))).start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop(signal.SIGKILL)


def _eventually(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_bulk_revoke_by_profile_through_the_cli(dev: DevProcess, tmp_path: Path) -> None:
    serials = []
    for i in range(3):
        csr = openssl_csr(tmp_path, f"bulk-{i}", subject=f"/CN=bulk-{i}")
        view = dev.cli_json("cert", "issue", "--csr", str(csr), "--profile", "device")
        serials.append(view["serial"])

    result = dev.cli("bulk", "revoke", "--profile", "device", "--reason", "keyCompromise", "--json")
    operation = json.loads(result.stdout)
    assert operation["status"] == "COMPLETED"
    assert operation["progress"] == "3/3" and operation["failed"] == 0
    for serial in serials:
        view = dev.cli_json("cert", "show", serial)
        assert view["status"] == "REVOKED"
        assert view["revocation"]["reason"] == "keyCompromise"
    listed = json.loads(dev.cli("bulk", "list", "--json").stdout)
    assert [item["id"] for item in listed] == [operation["id"]]
    revoked = [e for e in dev.events() if e["detail-type"] == "Certificate Revoked"]
    assert {e["detail"]["certificate"]["serial"] for e in revoked} == set(serials)


def test_approval_through_the_cli(dev: DevProcess, tmp_path: Path) -> None:
    csr = openssl_csr(tmp_path, "gated", subject="/CN=gated-1")
    pending = dev.cli_json("cert", "issue", "--csr", str(csr), "--profile", "gated")
    approval_id = pending["approval"]["id"]
    assert pending["approval"]["status"] == "PENDING"
    listed = dev.cli_json("approvals", "list")
    assert [item["id"] for item in listed] == [approval_id]

    def approve() -> dict | None:  # the workflow may not wait for the decision just yet
        result = dev.cli("approvals", "approve", approval_id, "--json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    _eventually(approve)
    issued = _eventually(
        lambda: [i for i in dev.cli_json("approvals", "list", "--status", "ISSUED")]
    )
    assert issued[0]["id"] == approval_id
    certificate = dev.cli_json("cert", "show", issued[0]["serial"])
    assert certificate["status"] == "ISSUED" and certificate["profile"] == "gated"


def test_sweep_now_through_the_cli(dev: DevProcess) -> None:
    view = dev.cli_json("sweep")
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["tenants"] == ["default"]
