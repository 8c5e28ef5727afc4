"""The PKCS#11 engine on a throwaway SoftHSM2 token (P-256 CA keys generated on the token).

SoftHSM reads SOFTHSM2_CONF and scans its token folder once, at C_Initialize, and a process
initializes the module once. So each test process (each xdist worker) gets one temporary
configuration with its tokens created before the module is first loaded, and every engine
is provisioned with its own key labels on the shared token.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported when used, so a missing python-pkcs11 skips instead of failing
    from certbridge.engines.pkcs11 import Pkcs11CAEngine, ProvisionedCA

NAME = "pkcs11-softhsm"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "certplane-ca"
SPARE_TOKEN = "certplane-spare"  # never logged in by the suite: real C_Login failures
PIN = "87654321"
SO_PIN = "12345678"


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 configuration private to this process, with its initialized tokens."""

    module: str
    home: Path
    conf: Path
    token: str
    spare_token: str
    pin: str
    so_pin: str

    def env(self) -> dict[str, str]:
        """The environment a subprocess (pkcs11-tool, softhsm2-util) needs to see the tokens."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


_lock = threading.Lock()
_softhsm: SoftHsm | None = None


def softhsm() -> SoftHsm:
    """This process's SoftHSM2 (created on first use), or pytest.skip saying what is missing."""
    global _softhsm
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (extra 'hsm')")
    tool = shutil.which("softhsm2-util")
    if tool is None:
        pytest.skip("softhsm2-util is not installed (Debian package softhsm2)")
    if not Path(MODULE).exists():
        pytest.skip(f"the SoftHSM2 PKCS#11 module {MODULE} is missing")
    with _lock:
        if _softhsm is None:
            home = Path(tempfile.mkdtemp(prefix="certplane-softhsm-"))
            atexit.register(shutil.rmtree, home, True)
            (home / "tokens").mkdir()
            conf = home / "softhsm2.conf"
            conf.write_text(
                f"directories.tokendir = {home / 'tokens'}\n"
                "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            )
            environment = {**os.environ, "SOFTHSM2_CONF": str(conf)}
            secrets = ("--so-pin", SO_PIN, "--pin", PIN)
            for label in (TOKEN, SPARE_TOKEN):
                subprocess.run(
                    [tool, "--init-token", "--free", "--label", label, *secrets],
                    check=True,
                    capture_output=True,
                    env=environment,
                )
            # Read by the module at C_Initialize, which has not happened in this process yet.
            os.environ["SOFTHSM2_CONF"] = str(conf)
            _softhsm = SoftHsm(MODULE, home, conf, TOKEN, SPARE_TOKEN, PIN, SO_PIN)
        return _softhsm


def provision(directory: Path, key_algorithm: str = "P-256") -> ProvisionedCA:
    """A fresh root and issuing CA on the token, with labels no other test uses."""
    from certbridge.engines.pkcs11 import provision_pkcs11_ca

    hsm = softhsm()
    suffix = uuid.uuid4().hex[:12]
    return provision_pkcs11_ca(
        token_label=hsm.token,
        pin=hsm.pin,
        chain_file=directory / "chain.pem",
        name=f"certplane hsm {suffix}",
        key_algorithm=key_algorithm,
        issuing_key_label=f"issuing-{suffix}",
        root_key_label=f"root-{suffix}",
        module=hsm.module,
    )


def pin_file(directory: Path, pin: str | None = None, name: str = "hsm.pin") -> Path:
    """A PIN file readable by its owner only, as an operator would write it."""
    path = directory / name
    path.write_text((pin or softhsm().pin) + "\n")
    path.chmod(0o600)
    return path


def make_engine(tmp_path: Path, key_algorithm: str = "P-256") -> Pkcs11CAEngine:
    from certbridge.engines.pkcs11 import Pkcs11CAEngine

    ca = provision(tmp_path, key_algorithm)
    return Pkcs11CAEngine(
        "contract-pkcs11",
        token_label=softhsm().token,
        key_label=ca.issuing_key_label,
        chain_file=str(ca.chain_file),
        module=softhsm().module,
        pin_file=str(pin_file(tmp_path)),
    )
