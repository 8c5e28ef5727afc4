"""The layout of a `certplane dev` home folder (state that survives restarts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CERTPLANE_HOME"
DEFAULT_HOME = Path("~/.certplane/dev")


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(path)


@dataclass(frozen=True)
class DevHome:
    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def engines_dir(self) -> Path:
        """Where CA engines keep their keys (mode 0600)."""
        return self.ca_dir / "engines"

    @property
    def root_pem(self) -> Path:
        return self.ca_dir / "root.pem"

    @property
    def chain_pem(self) -> Path:
        return self.ca_dir / "chain.pem"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin-token"

    @property
    def endpoint(self) -> Path:
        return self.root / "endpoint.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def bootstrap(self) -> Path:
        return self.root / "bootstrap"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "server.key"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "server.pem"

    def create(self) -> None:
        for folder in (self.root, self.ca_dir, self.state, self.tls_key.parent):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
