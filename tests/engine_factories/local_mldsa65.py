"""The local software CA running an ML-DSA-65 root and issuing CA."""

from pathlib import Path

from certbridge.engines.local import LocalCAEngine

NAME = "local-mldsa65"


def make_engine(tmp_path: Path) -> LocalCAEngine:
    return LocalCAEngine("contract-local-mldsa65", tmp_path / "local-ca", algorithm="ML-DSA-65")
