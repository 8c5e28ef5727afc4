"""The dependencies layer: arm64 / CPython 3.12 wheels, built without docker, on every function.

The layer's binaries cannot be imported on an x86 test machine, so they are checked by what
they are (ELF machine field, wheel tags), and the handlers' needs by a static import scan of
everything `lambdas/` reaches in the repository's own packages.
"""

from __future__ import annotations

import ast
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from cdk import dependencies_layer
from cdk.dependencies_layer import (
    RUNTIME_DISTRIBUTIONS,
    assets_hash,
    installed_constraints,
    runtime_requirements,
)
from tests.full_app import FullSynth, full_synth

REPO_ROOT = Path(__file__).resolve().parents[2]
OWN_PACKAGES = ("lambdas", "certplane", "certbridge", "connectors")
EM_AARCH64 = 183  # ELF e_machine of arm64
LAYER_DESCRIPTION = "certplane runtime dependencies"
# Imported somewhere lambdas/ reaches but deliberately not in the layer (why in the module).
NOT_BUNDLED = {
    "pkcs11": "pkcs11 engine: needs a VPC path to an HSM and the vendor library's own layer",
    "moto": "certplane dev only",
    "typer": "CLI only",
    "rich": "CLI only",
}


@pytest.fixture(scope="module")
def synth() -> FullSynth:
    return full_synth()


def _layer_dirs(synth: FullSynth) -> dict[str, Path]:
    """Stack name -> the staged folder of its dependencies layer (through the asset manifest)."""
    found = {}
    for name, template in synth.templates.items():
        assets = json.loads((synth.outdir / f"{name}.assets.json").read_text())["files"]
        for resource in template["Resources"].values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::LayerVersion" and props["Description"].startswith(
                LAYER_DESCRIPTION
            ):
                asset_hash = props["Content"]["S3Key"].removesuffix(".zip")
                found[name] = synth.outdir / assets[asset_hash]["source"]["path"]
    return found


@pytest.fixture(scope="module")
def site(synth: FullSynth) -> Path:
    folders = set(_layer_dirs(synth).values())
    assert len(folders) == 1, folders  # one asset, shared by every stack
    (folder,) = folders
    return folder / "python"


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    assert header[5] == 1, path  # little endian
    return int.from_bytes(header[18:20], "little")


def test_cryptography_is_built_for_aarch64(site: Path) -> None:
    rust = site / "cryptography" / "hazmat" / "bindings" / "_rust.abi3.so"
    assert _elf_machine(rust) == EM_AARCH64
    wheel = (site / "cryptography-50.0.2.dist-info" / "WHEEL").read_text()
    assert "aarch64" in wheel and "x86_64" not in wheel


def test_pydantic_core_is_built_for_cpython_312_on_aarch64(site: Path) -> None:
    (binary,) = (site / "pydantic_core").glob("_pydantic_core*.so")
    assert binary.name == "_pydantic_core.cpython-312-aarch64-linux-gnu.so"
    assert _elf_machine(binary) == EM_AARCH64


def test_no_binary_in_the_layer_is_for_another_machine(site: Path) -> None:
    binaries = list(site.rglob("*.so"))
    assert len(binaries) >= 3
    for binary in binaries:
        assert _elf_machine(binary) == EM_AARCH64, binary
        assert "x86_64" not in binary.name and "cpython-311" not in binary.name, binary


def test_layer_holds_the_pinned_distributions(site: Path) -> None:
    for requirement in runtime_requirements():
        name, version = requirement.split("==")
        name = name.split("[")[0].replace("-", "_")
        assert (site / f"{name}-{version}.dist-info").is_dir(), requirement
    for package in ("pynamodb", "aws_lambda_powertools", "pydantic", "aws_xray_sdk"):
        assert (site / package / "__init__.py").is_file(), package
    assert not (site / "bin").exists()  # console scripts are useless in a layer
    assert not list(site.rglob("*.pyc"))  # bytecode of the synthesizing interpreter


def test_layer_ships_exactly_the_versions_installed_here(site: Path) -> None:
    # Every distribution in the layer is pinned by a constraint, at the version the tests ran
    # with (read back from the layer's own dist-info, independently of pip's output).
    shipped = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions(path=[str(site)])
    }
    constraints = dict(c.split("==") for c in installed_constraints(runtime_requirements()))
    assert shipped == constraints
    assert {"botocore", "pydantic-core", "cffi", "aws-xray-sdk"} <= set(shipped)
    assert shipped["pydantic-core"] == metadata.version("pydantic-core")


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO_ROOT.joinpath(*parts[:cut])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def third_party_imports_of_handlers() -> set[str]:
    """Top-level third-party modules imported by anything `lambdas/` reaches in this repo."""
    seen: set[Path] = set()
    todo = [p for p in (REPO_ROOT / "lambdas").glob("*.py")]
    external: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OWN_PACKAGES:
                target = _module_file(name)
                if target is not None:
                    todo.append(target)
            elif top and top not in sys.stdlib_module_names:
                external.add(top)
    return external


def test_layer_holds_every_third_party_import_of_the_handlers(site: Path) -> None:
    needed = third_party_imports_of_handlers()
    assert {"aws_lambda_powertools", "pynamodb", "cryptography", "boto3"} <= needed
    missing = {
        name
        for name in needed - set(NOT_BUNDLED)
        if not (site / name).is_dir() and not (site / f"{name}.py").is_file()
    }
    assert not missing, f"imported by the handlers but not in the layer: {sorted(missing)}"


def test_every_function_has_the_dependencies_layer(synth: FullSynth) -> None:
    functions = 0
    for template in synth.templates.values():
        layers = {
            logical_id
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Lambda::LayerVersion"
            and resource["Properties"]["Description"].startswith(LAYER_DESCRIPTION)
        }
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            functions += 1
            props: dict[str, Any] = resource["Properties"]
            refs = {layer.get("Ref") for layer in props.get("Layers", [])}
            assert refs & layers, f"{logical_id} lacks the dependencies layer"
            assert props["Architectures"] == ["arm64"] and props["Runtime"] == "python3.12"
            assert props["TracingConfig"] == {"Mode": "Active"}
            env = props["Environment"]["Variables"]
            assert env["POWERTOOLS_SERVICE_NAME"].startswith("certplane")
            assert env["POWERTOOLS_METRICS_NAMESPACE"] == "certplane"
    assert functions >= 7  # five handlers and the two configured connectors


def test_requirements_are_the_pyproject_pins_the_runtime_needs() -> None:
    requirements = runtime_requirements()
    names = {r.split("==")[0].split("[")[0] for r in requirements}
    assert names == set(RUNTIME_DISTRIBUTIONS)
    assert not names & {"moto", "typer", "rich", "python-pkcs11"}
    assert all("==" in r for r in requirements)
    assert "aws-lambda-powertools[tracer,validation]==3.37.0" in requirements


def test_asset_hash_moves_with_pins_only() -> None:
    requirements = runtime_requirements()
    assert assets_hash(requirements) == assets_hash(tuple(requirements))
    bumped = tuple(r.replace("pynamodb==6.1.0", "pynamodb==6.1.1") for r in requirements)
    assert assets_hash(bumped) != assets_hash(requirements)
    constraints = installed_constraints(requirements)
    moved = tuple(c.replace("urllib3==", "urllib3==0.") for c in constraints)
    assert moved != constraints
    assert assets_hash(requirements, moved) != assets_hash(requirements, constraints)


def test_a_built_set_is_reused_from_the_cache(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The synth above filled the cache; building again must not run pip.
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although the cache holds this requirement set")

    monkeypatch.setattr(dependencies_layer.subprocess, "run", no_pip)
    requirements = runtime_requirements()
    cached = dependencies_layer.build_cached(requirements, installed_constraints(requirements))
    assert (cached / "python" / "cryptography").is_dir()
