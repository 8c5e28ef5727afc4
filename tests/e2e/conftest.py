"""Start `certplane dev` as a real process and drive it with real clients (CLI, openssl, curl)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 60


class DevProcess:
    """One `certplane dev` server on a free port with its own home folder."""

    def __init__(self, home: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.extra_args = extra_args  # e.g. ("--config", path)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.status_url = ""

    def start(self) -> DevProcess:
        endpoint = self.home / "endpoint.json"
        endpoint.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                str(BIN / "certplane"),
                "dev",
                "--port",
                "0",
                "--status-port",
                "0",
                "--home",
                str(self.home),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"certplane dev exited: {self.process.stdout.read()}")
            if endpoint.exists():
                details = json.loads(endpoint.read_text())
                self.url = details["url"]
                self.status_url = details.get("status_url", "")
                try:
                    health = requests.get(
                        f"{self.url}/health", verify=str(self.home / "ca/root.pem"), timeout=5
                    )
                    if health.status_code == 200:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        raise AssertionError("certplane dev did not become healthy")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTPLANE_")}
        env["CERTPLANE_HOME"] = str(self.home)
        return env

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "certplane"), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"certplane {' '.join(args)} failed: {result.stderr}")
        return result

    def cli_json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "--json").stdout)

    def events(self) -> list[dict]:
        path = self.home / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevProcess]:
    server = DevProcess(tmp_path / "home").start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop(signal.SIGKILL)


def openssl_csr(folder: Path, name: str, *, key: str = "ec", subject: str, sans: str = "") -> Path:
    """A key and CSR made by `openssl req` (an independent client)."""
    key_options = {
        "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "rsa1024": ["-newkey", "rsa:1024"],
        "p192": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
    }[key]
    csr = folder / f"{name}.csr"
    command = [
        "openssl",
        "req",
        "-new",
        *key_options,
        "-nodes",
        "-keyout",
        str(folder / f"{name}.key"),
        "-out",
        str(csr),
        "-subj",
        subject,
    ]
    if sans:
        command += ["-addext", f"subjectAltName={sans}"]
    subprocess.run(command, check=True, capture_output=True)
    return csr
