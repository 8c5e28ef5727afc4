"""Hosts Lambda handlers the way Lambda does: by handler name, imported on first invocation.

The core never imports `lambdas/`; this module resolves `module.function` strings taken from
`certplane.resources`, exactly as the Lambda runtime resolves the CDK's `handler` property.
"""

from __future__ import annotations

import importlib
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certplane.resources import FunctionSpec

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class DevLambdaContext:
    """The attributes of a Lambda context object that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "certplane-dev"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class LambdaHost:
    """Invokes handlers one at a time (Lambda runs one event per instance)."""

    def __init__(self, account_id: str, region: str) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.RLock()
        self._account_id = account_id
        self._region = region

    def _handler(self, spec: FunctionSpec) -> Handler:
        if spec.handler not in self._handlers:
            os.environ.update(spec.environment)
            module_name, _, function_name = spec.handler.rpartition(".")
            self._handlers[spec.handler] = getattr(
                importlib.import_module(module_name), function_name
            )
        return self._handlers[spec.handler]

    def invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            handler = self._handler(spec)
            context = DevLambdaContext(
                function_name=f"certplane-{spec.logical_id}",
                invoked_function_arn=(
                    f"arn:aws:lambda:{self._region}:{self._account_id}:function:"
                    f"certplane-{spec.logical_id}"
                ),
                log_group_name=f"/aws/lambda/certplane-{spec.logical_id}",
            )
            return handler(event, context)

    @property
    def lock(self) -> threading.RLock:
        return self._lock
