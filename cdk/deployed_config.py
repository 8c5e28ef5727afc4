"""The TOML configuration the stacks were built from, shipped to every function as a layer."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from certplane.config import DEFAULT_CONFIG, Settings

# Layers unpack under /opt: the file lands at /opt/certplane/certplane.toml.
LAYER_FOLDER = "certplane"
FILE_NAME = "certplane.toml"
PATH_IN_LAMBDA = f"/opt/{LAYER_FOLDER}/{FILE_NAME}"


@dataclass(frozen=True)
class DeployedConfig:
    """One configuration file: its exact text (comments and all) and the parsed `Settings`.

    The text, not a re-serialisation, is what the functions read, so `certplane dev --config
    FILE` and the deployed functions load the same bytes.
    """

    text: str
    settings: Settings
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> DeployedConfig:
        """`path`, or the packaged defaults; validated exactly as the functions will load it."""
        if path:
            text, source = Path(path).read_text(), str(path)
        else:
            text = package_files.files("certplane").joinpath(DEFAULT_CONFIG).read_text()
            source = f"certplane/{DEFAULT_CONFIG} (packaged defaults)"
        return cls(text=text, settings=Settings.from_toml(text), source=source)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def stage(self) -> Path:
        """A folder holding only `certplane/certplane.toml`, named by content (idempotent)."""
        folder = Path(tempfile.gettempdir()) / f"certplane-config-{self.digest[:16]}"
        target = folder / LAYER_FOLDER / FILE_NAME
        if not target.is_file() or target.read_text() != self.text:
            # Atomic: parallel synths (pytest -n) may stage the same file at once.
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=folder.parent, prefix=".certplane-config-", delete=False
            ) as staging:
                staging.write(self.text)
            os.replace(staging.name, target)
        return folder


class ConfigLayer(Construct):
    """A Lambda layer carrying the configuration file; one per stack (see `of`).

    A layer rather than a file in the code asset: editing the configuration then leaves the
    code asset's hash alone, and the code asset stays exactly the repository's packages.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployedConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(config.stage())),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=f"certplane configuration ({config.source}), sha256 {config.digest[:12]}",
        )

    @classmethod
    def of(cls, scope: Construct, config: DeployedConfig) -> ConfigLayer:
        """The stack's config layer, created on first use."""
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("CertplaneConfig")
        if isinstance(existing, ConfigLayer):
            if existing.config.digest != config.digest:
                raise ValueError("one stack cannot ship two configurations")
            return existing
        return cls(stack, "CertplaneConfig", config=config)
