"""The local software CA (P-256)."""

from pathlib import Path

from certbridge.engines.local import LocalCAEngine

NAME = "local"


def make_engine(tmp_path: Path) -> LocalCAEngine:
    return LocalCAEngine("contract-local", tmp_path / "local-ca")
