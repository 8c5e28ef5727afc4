"""`certplane dev --config` with `[[connectors]]`: a local receiver watches events arrive."""

from __future__ import annotations

import json
import signal
import time
from importlib import resources
from pathlib import Path

import pytest

from tests.connector_targets import WebhookReceiver
from tests.e2e.conftest import DevProcess, openssl_csr

pytestmark = pytest.mark.e2e


def test_a_configured_webhook_receives_signed_events(tmp_path: Path, monkeypatch) -> None:
    receiver = WebhookReceiver()
    monkeypatch.setenv("DEV_HOOK_SECRET", receiver.secret)
    config = tmp_path / "certplane.toml"
    config.write_text(
        resources.files("certplane").joinpath("defaults/certplane.toml").read_text()
        + f"""
[[connectors]]
name = "default-hooks"
tenant = "default"
type = "webhook"
url = "{receiver.url}"
secret_env = "DEV_HOOK_SECRET"
events = ["Certificate Issued", "Certificate Revoked"]
"""
    )
    server = DevProcess(tmp_path / "home", ("--config", str(config))).start()
    try:
        csr = openssl_csr(tmp_path, "sensor", subject="/CN=sensor-hook")
        issued = server.cli_json("cert", "issue", "--csr", str(csr), "--profile", "device")
        server.cli("cert", "revoke", issued["serial"], "--reason", "keyCompromise")
        deadline = time.monotonic() + 20
        while len(receiver.processed) < 2:  # the dev front's own TLS certificate comes too
            assert time.monotonic() < deadline, f"events never arrived: {receiver.failures}"
            time.sleep(0.2)
        types = {document["type"] for document in receiver.processed.values()}
        assert {"certificate.issued", "certificate.revoked"} <= types
        subjects = {
            json.dumps(document["data"].get("certificate", {}).get("subject"))
            for document in receiver.processed.values()
        }
        assert any("sensor-hook" in subject for subject in subjects)
        assert set(receiver.accepted.values()) == {1}
        assert receiver.failures == []
    finally:
        server.stop(signal.SIGTERM)
        receiver.close()
