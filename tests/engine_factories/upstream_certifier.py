"""The upstream Certifier engine against a second certplane's xPKI Certifier API.

The upstream is a real `certplane dev` process (its own home, its own local CA), started on
first use and shared by every test of this worker process; it stops when the process exits.
The engine authenticates with the upstream's SAT (so revocation is supported) and trusts the
upstream's TLS root; its chain file is the upstream's published chain.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from certbridge.engines.upstream import UpstreamCertifierEngine
from tests.e2e.conftest import DevProcess

NAME = "upstream-certifier"
# "validity": the upstream decides notAfter itself (whole validityDays, on its own clock),
# so the leaf ends within minutes of the request's notAfter, not exactly at it.
EMULATOR_GAPS = frozenset({"validity"})

_lock = threading.Lock()
_upstream: DevProcess | None = None


def running_upstream() -> DevProcess:
    """The shared upstream `certplane dev` of this process, started on first call."""
    global _upstream
    with _lock:
        if _upstream is None or _upstream.process is None or _upstream.process.poll() is not None:
            home = Path(tempfile.mkdtemp(prefix="certplane-upstream-")) / "home"
            _upstream = DevProcess(home).start()
            atexit.register(_stop, _upstream)
        return _upstream


def _stop(server: DevProcess) -> None:
    if server.process is not None and server.process.poll() is None:
        server.stop(signal.SIGKILL)
    shutil.rmtree(server.home.parent, ignore_errors=True)


def engine_options(server: DevProcess, **overrides: object) -> dict[str, object]:
    """Options (as TOML would give them) for an engine against `server`, SAT-authenticated."""
    home = server.home
    options: dict[str, object] = {
        "base_url": f"{server.url}/v1/certifier",
        "ca_file": str(home / "ca/root.pem"),
        "chain_file": str(home / "ca/chain.pem"),
        "auth": "SAT",
        "sat_file": str(home / "bootstrap/sat-token"),
        "profile_name": "device",
        "connect_timeout_seconds": 5,
        "read_timeout_seconds": 30,
    }
    options.update(overrides)
    return options


def make_engine(tmp_path: Path) -> UpstreamCertifierEngine:
    return UpstreamCertifierEngine("contract-upstream", **engine_options(running_upstream()))
