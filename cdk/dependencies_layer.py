"""The functions' third-party packages as one Lambda layer, built by pip without docker.

The layer holds the wheels pip picks for the Lambda runtime (CPython 3.12 on arm64 / Graviton),
not for the synthesizing machine: `pip install --platform ... --only-binary=:all:` downloads the
aarch64 manylinux wheels (cryptography, pydantic-core, ...) on any host. Its asset hash is the
pinned requirement list plus the target platform, so a synth with unchanged pins reuses the
staged asset, and the pip output is cached on disk so test suites do not download per synth.

Transitive dependencies are pinned too: to the versions installed where the synth runs (the
environment the tests ran in), as pip constraints that are part of the hash. What was tested
is what ships, and the same hash always means the same packages.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.12"
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): every manylinux tag up to it.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
# The distributions the handlers import at run time (lambdas/ and what it reaches), taken with
# their pins from pyproject.toml. Not bundled: moto, typer, rich (CLI and `certplane dev`
# only) and python-pkcs11 (the pkcs11 engine needs a VPC path to an HSM and the vendor's
# PKCS#11 library in a layer of its own; see docs/engines.md).
RUNTIME_DISTRIBUTIONS = (
    "aws-lambda-powertools",
    "boto3",
    "cryptography",
    "pydantic",
    "pynamodb",
    "requests",
    "jsonschema",
    "acme",
)
# Extras the layer adds to a pin: the X-Ray SDK, so Powertools' Tracer works where tracing is on.
EXTRA_EXTRAS = {"aws-lambda-powertools": ("tracer",)}
# Bump when the layer's layout or build command changes: it is part of the asset hash.
LAYOUT_VERSION = "1"
# Only the required fallback of `BundlingOptions`: local bundling always succeeds or raises.
FALLBACK_IMAGE = "public.ecr.aws/sam/build-python3.12:latest-arm64"

# The Lambda runtime, for evaluating dependency markers (`; python_version < "3.13"`, ...).
TARGET_ENVIRONMENT = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> tuple[str, ...]:
    """`RUNTIME_DISTRIBUTIONS` as pinned in pyproject.toml (dependencies and extras), sorted."""
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    pins: dict[str, str] = {}
    for requirement in declared:
        match = _NAME.match(requirement)
        if not match:
            continue
        name, extras, spec = _normalise(match[1]), match[2] or "", match[3].strip()
        if name not in RUNTIME_DISTRIBUTIONS:
            continue
        if not spec.startswith("=="):
            raise ValueError(f"pyproject.toml must pin {name} with == to bundle it: {requirement}")
        wanted = sorted({*extras.strip("[]").split(","), *EXTRA_EXTRAS.get(name, ())} - {""})
        pins[name] = f"{name}[{','.join(wanted)}]{spec}" if wanted else f"{name}{spec}"
    missing = sorted(set(RUNTIME_DISTRIBUTIONS) - set(pins))
    if missing:
        raise ValueError(f"pyproject.toml does not declare {missing}")
    return tuple(sorted(pins.values()))


def installed_constraints(requirements: tuple[str, ...]) -> tuple[str, ...]:
    """`name==version` for every distribution `requirements` pull in on the Lambda runtime, as
    installed in this environment; distributions not installed here are left to pip."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = [Requirement(requirement) for requirement in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pins[name] = distribution.version
        extras = sorted(requirement.extras) or [""]
        for text in distribution.requires or []:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({**TARGET_ENVIRONMENT, "extra": extra}) for extra in extras
            ):
                todo.append(dependency)
    return tuple(f"{name}=={version}" for name, version in sorted(pins.items()))


def pip_arguments(
    requirements: tuple[str, ...], target: Path, constraints: Path | None = None
) -> list[str]:
    """The pip command line that installs `requirements` for the Lambda runtime into `target`."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # the synthesizing interpreter's bytecode is useless to 3.12
        *platforms,
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *(["--constraint", str(constraints)] if constraints else []),
        *requirements,
    ]


def assets_hash(requirements: tuple[str, ...], constraints: tuple[str, ...] = ()) -> str:
    lines = [LAYOUT_VERSION, PYTHON_VERSION, *PLATFORMS, *requirements, "", *constraints]
    text = "\n".join(lines)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_root() -> Path:
    """CERTPLANE_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, under certplane/lambda-deps."""
    configured = os.environ.get("CERTPLANE_CACHE_DIR")
    if configured:
        return Path(configured) / "lambda-deps"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certplane" / "lambda-deps"


def build_cached(requirements: tuple[str, ...], constraints: tuple[str, ...] = ()) -> Path:
    """The installed packages (a folder holding `python/`), built once per hash.

    pip writes into a private temporary folder that is renamed into place when complete, so
    parallel synths (pytest -n) may race: the loser discards its copy and uses the winner's.
    """
    final = cache_root() / assets_hash(requirements, constraints)
    if (final / "python").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        pinned = staging / "constraints.txt"
        pinned.write_text("".join(f"{line}\n" for line in constraints))
        result = subprocess.run(
            pip_arguments(requirements, staging / "python", pinned),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pip could not install the Lambda dependencies for {PLATFORMS[0]}:\n"
                f"{result.stdout}{result.stderr}"
            )
        shutil.rmtree(staging / "python" / "bin", ignore_errors=True)  # console scripts
        pinned.unlink()
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "python").is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _link_or_copy(source: str, target: str) -> None:
    """Hard links keep the staged asset free on disk; copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """CDK's local bundling hook: pip for the Lambda platform, on this machine, no docker."""

    def __init__(self, requirements: tuple[str, ...], constraints: tuple[str, ...]) -> None:
        self.requirements = requirements
        self.constraints = constraints

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        built = build_cached(self.requirements, self.constraints)
        shutil.copytree(built, output_dir, dirs_exist_ok=True, copy_function=_link_or_copy)
        return True


def _stage_requirements(requirements: tuple[str, ...], constraints: tuple[str, ...]) -> Path:
    """requirements.txt and constraints.txt: the asset's source (and the fallback's input)."""
    digest = assets_hash(requirements, constraints)[:16]
    folder = Path(tempfile.gettempdir()) / f"certplane-requirements-{digest}"
    for name, lines in (("requirements.txt", requirements), ("constraints.txt", constraints)):
        target = folder / name
        text = "".join(f"{line}\n" for line in lines)
        if not target.is_file() or target.read_text() != text:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as staging:
                staging.write(text)
            os.replace(staging.name, target)
    return folder


class DependenciesLayer(Construct):
    """The runtime's third-party packages under /opt/python; one per stack (see `of`)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.requirements = runtime_requirements()
        self.constraints = installed_constraints(self.requirements)
        platform_args = " ".join(f"--platform {tag}" for tag in PLATFORMS)
        fallback = (
            f"pip install {platform_args} --only-binary=:all: --python-version {PYTHON_VERSION}"
            " --implementation cp -t /asset-output/python -r /asset-input/requirements.txt"
            " -c /asset-input/constraints.txt"
        )
        self.code = lambda_.Code.from_asset(
            str(_stage_requirements(self.requirements, self.constraints)),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=assets_hash(self.requirements, self.constraints),
            bundling=BundlingOptions(
                image=DockerImage.from_registry(FALLBACK_IMAGE),
                command=["bash", "-c", fallback],
                local=LocalPipBundling(self.requirements, self.constraints),
            ),
        )
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=self.code,
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            # CloudFormation caps a layer description at 256 characters.
            description=("certplane runtime dependencies: " + ", ".join(self.requirements))[:256],
        )

    @classmethod
    def of(cls, scope: Construct) -> DependenciesLayer:
        """The stack's dependencies layer, created on first use."""
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("CertplaneDependencies")
        if isinstance(existing, DependenciesLayer):
            return existing
        return cls(stack, "CertplaneDependencies")
