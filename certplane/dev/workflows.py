"""Step Functions in `certplane dev` and tests: moto's Lambda runs the real handlers in process.

moto's Lambda without docker only echoes the payload. `serve_handlers_in_process` replaces its
invoke with one that resolves the function's `Handler` (as Lambda does) and calls it through a
`LambdaHost`; an exception becomes an unhandled function error whose `errorType` is the
exception's class name, which is what a state machine's Retry and Catch match on.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3
from moto.awslambda_simple.models import LambdaSimpleBackend

from certplane.resources import (
    RENEWAL_SWEEP,
    STATE_MACHINES,
    WORKFLOW_FUNCTIONS,
    FunctionSpec,
    StateMachineSpec,
)

logger = logging.getLogger(__name__)
ROLE_NAME = "certplane-dev-workflows"
_ORIGINAL_INVOKE = LambdaSimpleBackend.invoke


def serve_handlers_in_process(
    invoke_handler: Callable[[FunctionSpec, dict[str, Any]], Any], specs: Iterable[FunctionSpec]
) -> Callable[[], None]:
    """Patch moto's simple Lambda backend; returns a function that undoes the patch."""
    by_handler = {spec.handler: spec for spec in specs}

    def invoke(
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        function = backend.get_function(function_name, qualifier)
        spec = by_handler.get(function.handler)
        if spec is None:
            return _ORIGINAL_INVOKE(
                backend, function_name, qualifier, body, headers, response_headers
            )
        event = json.loads(body) if body else {}
        try:
            result = invoke_handler(spec, event)
        except Exception as error:  # the function failed: Lambda reports it, it does not raise
            logger.info("%s failed: %s: %s", spec.logical_id, type(error).__name__, error)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {"errorType": type(error).__name__, "errorMessage": str(error)[:1000]}
            ).encode()
        return json.dumps(result).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaSimpleBackend.invoke = _ORIGINAL_INVOKE  # type: ignore[method-assign]

    return undo


def _code_zip() -> bytes:
    """A placeholder deployment package: the code runs in process, never from the zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "certplane dev runs this function's handler in process\n")
    return buffer.getvalue()


def create_functions(
    lambda_client: Any, iam_client: Any, specs: Iterable[FunctionSpec], prefix: str = "certplane-"
) -> dict[str, str]:
    """Create one moto Lambda function per spec; returns logical id → function ARN."""
    try:
        role_arn = iam_client.create_role(
            RoleName=ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
    except iam_client.exceptions.EntityAlreadyExistsException:
        role_arn = iam_client.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    arns: dict[str, str] = {}
    for spec in specs:
        arns[spec.logical_id] = lambda_client.create_function(
            FunctionName=prefix + spec.logical_id,
            Runtime="python3.12",
            Role=role_arn,
            Handler=spec.handler,
            Code={"ZipFile": _code_zip()},
            Description=spec.description,
            Timeout=60,
        )["FunctionArn"]
    return arns


def create_state_machines(
    sfn_client: Any,
    iam_client: Any,
    machines: Iterable[StateMachineSpec],
    definitions: Mapping[str, str],
    function_arns: Mapping[str, str],
) -> dict[str, str]:
    """Create each state machine from its definition text (placeholders substituted).

    `definitions` maps a machine's logical id to its definition with `${Function}`
    placeholders: `StateMachineSpec.definition_text` in dev, the synthesized template's
    DefinitionString in tests. Returns logical id → state machine ARN.
    """
    role_arn = iam_client.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    arns: dict[str, str] = {}
    for machine in machines:
        text = definitions[machine.logical_id]
        for logical_id, arn in function_arns.items():
            text = text.replace("${" + logical_id + "}", arn)
        arns[machine.logical_id] = sfn_client.create_state_machine(
            name=machine.default_name, definition=text, roleArn=role_arn
        )["stateMachineArn"]
    return arns


class DevWorkflows:
    """The workflows in `certplane dev`: step functions and state machines in moto, the
    handlers in process, and the renewal sweep every `dev_sweep_interval_minutes`."""

    def __init__(
        self,
        invoke_handler: Callable[[FunctionSpec, dict[str, Any]], Any],
        settings: Any,
        stopping: threading.Event,
    ) -> None:
        self._invoke = invoke_handler
        self._settings = settings.workflows
        self._stopping = stopping
        self.machines: dict[str, str] = {}

    def start(self) -> None:
        serve_handlers_in_process(self._invoke, WORKFLOW_FUNCTIONS)
        iam = boto3.client("iam")
        functions = create_functions(boto3.client("lambda"), iam, WORKFLOW_FUNCTIONS)
        definitions = {m.logical_id: m.definition_text(self._settings) for m in STATE_MACHINES}
        self.machines = create_state_machines(
            boto3.client("stepfunctions"), iam, STATE_MACHINES, definitions, functions
        )
        for spec in STATE_MACHINES:  # what the CDK gives the management API
            os.environ[spec.env_var] = self.machines[spec.logical_id]
        interval = self._settings.dev_sweep_interval_minutes * 60
        if interval > 0:
            threading.Thread(target=self._sweep_loop, args=(interval,), daemon=True).start()

    def sweep(self) -> str:
        """Start a renewal sweep of every tenant now; returns the execution ARN."""
        return boto3.client("stepfunctions").start_execution(
            stateMachineArn=self.machines[RENEWAL_SWEEP.logical_id],
            name=f"sweep-scheduled-{uuid.uuid4().hex[:12]}",
            input="{}",
        )["executionArn"]

    def _sweep_loop(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.sweep()
            except Exception:  # the next interval tries again
                logger.exception("could not start the renewal sweep")
