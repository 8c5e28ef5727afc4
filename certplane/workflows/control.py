"""Starting and reading workflow executions from the management API (and `certplane dev`).

Each state machine's ARN comes from the environment variable its spec names (the CDK sets it
on the management API function; `certplane dev` sets it when it creates the machines).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from certplane.errors import Conflict, ServiceUnavailable
from certplane.resources import StateMachineSpec


class WorkflowControl:
    """StartExecution, DescribeExecution and task answers, one Step Functions client."""

    def __init__(self, client: Any = None, environ: Mapping[str, str] = os.environ) -> None:
        self._client = client
        self._environ = environ

    @property
    def client(self) -> Any:
        if self._client is None:
            # Imported at first use: the EST door loads this module for approval-gated
            # profiles, and boto3 (with s3transfer) would add to every cold start.
            import boto3

            self._client = boto3.client("stepfunctions")
        return self._client

    def available(self, spec: StateMachineSpec) -> bool:
        return bool(self._environ.get(spec.env_var))

    def arn(self, spec: StateMachineSpec) -> str:
        arn = self._environ.get(spec.env_var)
        if not arn:
            raise ServiceUnavailable(
                "workflows_unavailable", f"the {spec.logical_id} workflow is not deployed here"
            )
        return arn

    def start(self, spec: StateMachineSpec, name: str, payload: dict[str, Any]) -> str:
        try:
            return self.client.start_execution(
                stateMachineArn=self.arn(spec), name=name, input=json.dumps(payload)
            )["executionArn"]
        except self.client.exceptions.ExecutionAlreadyExists:
            raise Conflict("already_started", f"workflow execution {name} exists") from None

    def execution_arn(self, spec: StateMachineSpec, name: str) -> str:
        """The ARN of execution `name` of `spec` (execution ARNs follow the machine's)."""
        machine = self.arn(spec)
        return machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"

    def describe(self, spec: StateMachineSpec, name: str) -> dict[str, Any]:
        described = self.client.describe_execution(executionArn=self.execution_arn(spec, name))
        view: dict[str, Any] = {"name": name, "status": described["status"]}
        for key, field in (("startDate", "started_at"), ("stopDate", "stopped_at")):
            if described.get(key):
                view[field] = described[key].isoformat()
        if described.get("output"):
            view["output"] = json.loads(described["output"])
        if described.get("error"):
            view["error"] = described["error"]
        return view

    def send_success(self, token: str, output: dict[str, Any]) -> None:
        self.client.send_task_success(taskToken=token, output=json.dumps(output))

    def send_failure(self, token: str, error: str, cause: str) -> None:
        self.client.send_task_failure(taskToken=token, error=error, cause=cause[:1000])
