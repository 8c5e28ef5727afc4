"""The embedded "AWS account" of the deploy smoke test: moto in server mode (run as a script).

A separate process, so nothing the deployed functions do (environment, imported modules, moto's
global backends) leaks into the pytest worker. It differs from plain `moto_server` in two ways:
- moto's Lambda without docker only echoes the payload, so `invoke` is replaced by one that
  runs the deployed function for real — its deployed code package and layers unzipped from
  moto, its deployed environment, in a warm worker process (tests/deploy/lambda_worker.py)
  per function;
- `fix_moto_gaps` makes moto's CloudFormation follow AWS where they differ (see there).

Lambda unpacks layers under /opt; here each function's layers are unpacked under a folder of
their own and environment values starting with /opt/ are rewritten to it. Third-party packages
come from this interpreter, not from the dependency layer (its wheels are built for arm64).
The JSON object in env DEPLOY_SMOKE_OVERLAY adds variables every function gets on top of its
deployed ones (the smoke test passes the local CA folder, see docs/operations.md).

Usage: python moto_service.py WORKDIR; prints "PORT <n>" once serving; stops when its stdin
closes (the test ended or died).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction, LayerVersion
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.events.models import EventBus
from moto.server import ThreadedMotoServer
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

WORKER = Path(__file__).with_name("lambda_worker.py")
LAYER_ROOT = "/opt"
# What a function sees besides its own configuration: the process basics, fake credentials
# and the endpoint of this embedded account (never the caller's AWS settings).
INHERITED = ("PATH", "HOME", "LANG", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "SYSTEMROOT")


class FunctionRuntime:
    """A warm execution environment of one function version: one process, one event at a time."""

    def __init__(self, function: LambdaFunction, layers: list[Path], workdir: Path) -> None:
        self.arn = function.function_arn
        root = workdir / f"{function.function_name}-{function.code_digest[:12]}"
        code_dir, opt_dir = root / "task", root / "opt"
        _unzip(function.code_bytes, code_dir)
        opt_dir.mkdir(parents=True, exist_ok=True)
        for layer in layers:  # in order: a later layer's files win, as in Lambda
            _overlay(layer, opt_dir)
        environment = {name: os.environ[name] for name in INHERITED if name in os.environ}
        environment.update(
            {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
        )
        environment.update(
            {
                name: _relocate(str(value), opt_dir)
                for name, value in function.environment_vars.items()
            }
        )
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": function.logs_group_name,
                "LAMBDA_TASK_ROOT": str(code_dir),
                "POWERTOOLS_TRACE_DISABLED": "1",
                **json.loads(os.environ.get("DEPLOY_SMOKE_OVERLAY", "{}")),
            }
        )
        self.log = (root / "worker.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(code_dir), function.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=environment,
            text=True,
            cwd=code_dir,
        )
        self.lock = threading.Lock()
        self.hang_seconds = max(60, 3 * int(function.timeout))

    def invoke(self, event: Any) -> dict[str, Any]:
        request = {"event": event, "request_id": str(uuid.uuid4()), "function_arn": self.arn}
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            # A hang guard, not Lambda's timeout: a slow shared CI machine must not fail here.
            ready, _, _ = select.select([self.process.stdout], [], [], self.hang_seconds)
            line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()  # the next invocation starts a fresh environment
            self.process.wait()
            reason = "worker timed out" if not ready else "worker died"
            return {"error": {"errorType": "Runtime.ExitError", "errorMessage": reason}}
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)
        self.log.close()


def _unzip(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(target)


def _overlay(source: Path, target: Path) -> None:
    """Link `source`'s entries into `target`, merging folders both have."""
    for entry in source.iterdir():
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink() and entry.is_dir():
            _overlay(entry, destination)
        elif destination.is_symlink() and destination.is_dir() and entry.is_dir():
            linked = destination.resolve()
            destination.unlink()
            destination.mkdir()
            _overlay(linked, destination)
            _overlay(entry, destination)
        else:
            destination.unlink(missing_ok=True)
            destination.symlink_to(entry, target_is_directory=entry.is_dir())


def _relocate(value: str, opt_dir: Path) -> str:
    if value == LAYER_ROOT or value.startswith(LAYER_ROOT + "/"):
        return str(opt_dir) + value[len(LAYER_ROOT) :]
    return value


class DeployedFunctions:
    """Replaces moto's echoing Lambda invoke with the real function."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runtimes: dict[str, FunctionRuntime] = {}
        self.layers: dict[str, Path] = {}  # layer version ARN -> its unzipped content
        self.lock = threading.Lock()

    def runtime(self, backend: LambdaSimpleBackend, function: LambdaFunction) -> FunctionRuntime:
        key = f"{function.function_arn}@{function.code_digest}"
        with self.lock:
            if key not in self.runtimes or not self.runtimes[key].alive:
                layers = [self._layer(backend, layer["Arn"]) for layer in function.layers]
                self.runtimes[key] = FunctionRuntime(function, layers, self.workdir)
            return self.runtimes[key]

    def _layer(self, backend: LambdaSimpleBackend, arn: str) -> Path:
        """Each layer version is unzipped once (the dependency layer is tens of MB)."""
        if arn not in self.layers:
            folder = self.workdir / "layers" / hashlib.sha256(arn.encode()).hexdigest()[:16]
            _unzip(backend.layers_versions_by_arn(arn).code_bytes, folder)
            self.layers[arn] = folder
        return self.layers[arn]

    def install(self) -> None:
        functions = self

        def invoke(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> bytes:
            function = backend.get_function(function_name, qualifier)
            reply = functions.runtime(backend, function).invoke(json.loads(body) if body else {})
            if "error" in reply:  # Lambda reports a function error; it does not fail the call
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(reply["error"]).encode()
            return json.dumps(reply["result"]).encode()

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]

    def stop(self) -> None:
        """Stop the workers; drop the unzipped packages (tens of MB each), keep their logs."""
        for runtime in self.runtimes.values():
            runtime.stop()
        unzipped = [self.workdir / "layers", *self.workdir.glob("*/task")]
        for folder in unzipped + list(self.workdir.glob("*/opt")):
            shutil.rmtree(folder, ignore_errors=True)


def fix_moto_gaps() -> None:
    """Where moto's CloudFormation differs from AWS's documented behaviour, follow AWS.

    - `Ref` of an AWS::Events::EventBus is its name, of an AWS::Lambda::LayerVersion its ARN;
      moto's models have no physical id, so those `Ref`s (the functions' CERTPLANE_EVENT_BUS,
      their Layers) would be empty.
    - moto's AWS::Lambda::Function ignores `Layers`: the function would run without its
      configuration layer.
    - moto's AWS::StepFunctions::StateMachine ignores `DefinitionSubstitutions` (the step
      functions' ARNs) and lands in a backend its executing Step Functions never looks in
      (`execute_state_machine` serves another one): it is created in the executing backend,
      substitutions applied, under the name and so the ARN CloudFormation reports.
    """
    EventBus.physical_resource_id = property(lambda bus: bus.name)  # type: ignore[attr-defined]
    LayerVersion.physical_resource_id = property(lambda layer: layer.arn)  # type: ignore[attr-defined]
    create = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_with_layers(
        cls: type[LambdaFunction], name: str, template: dict[str, Any], *args: Any, **kwargs: Any
    ) -> LambdaFunction:
        function = create(cls, name, template, *args, **kwargs)
        layers = template["Properties"].get("Layers", [])
        if layers:
            function.layers = function._get_layers_data(layers)
        return function

    LambdaFunction.create_from_cloudformation_json = classmethod(create_with_layers)  # type: ignore[method-assign,assignment]

    def create_executable(
        cls: type[StateMachine],
        name: str,
        template: dict[str, Any],
        account: str,
        region: str,
        **kwargs: Any,
    ) -> StateMachine:
        properties = template["Properties"]
        definition = properties.get("DefinitionString", "")
        for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        return stepfunctions_parser_backends[account][region].create_state_machine(
            properties.get("StateMachineName", name), definition, properties.get("RoleArn", "")
        )

    StateMachine.create_from_cloudformation_json = classmethod(create_executable)  # type: ignore[method-assign,assignment]


def main() -> None:
    workdir = Path(sys.argv[1])
    fix_moto_gaps()
    functions = DeployedFunctions(workdir)
    functions.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    # The Step Functions executor calls Lambda and the other services back on this port.
    os.environ["MOTO_PORT"] = str(port)
    os.environ["AWS_ENDPOINT_URL"] = f"http://localhost:{port}"
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # until the test closes the pipe (or dies)
    functions.stop()
    server.stop()


if __name__ == "__main__":
    main()
