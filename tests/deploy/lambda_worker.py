"""One warm "Lambda execution environment" for a deployed function (run as a script).

Started by `tests/deploy/moto_service.py` with exactly the deployed function's environment, it
imports the handler from the function's *deployed code package* (unzipped from moto), the way
the Lambda runtime does, and then serves invocations: one JSON request per stdin line, one JSON
reply per line on the original stdout. Anything the handler prints (Powertools logs) goes to
stderr, so it can never corrupt a reply.

Usage: python lambda_worker.py CODE_DIR HANDLER
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class LambdaContext:
    """The context attributes handlers and Powertools read."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "deploy-smoke"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _load_handler(code_dir: str, handler: str) -> Any:
    # The deployed package comes first, as /var/task does in Lambda; third-party packages
    # still come from this interpreter's site-packages (see docs/operations.md).
    sys.path.insert(0, code_dir)
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name)
    top = sys.modules[module_name.partition(".")[0]]
    if not os.path.realpath(top.__file__ or "").startswith(os.path.realpath(code_dir)):
        raise ImportError(f"{module_name} was not imported from the deployed package {code_dir}")
    return getattr(module, function_name)


def main() -> None:
    code_dir, handler_name = sys.argv[1], sys.argv[2]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to stderr
    sys.stdout = sys.stderr
    try:
        handler = _load_handler(code_dir, handler_name)
    except Exception as error:  # an init error fails every invocation, as in Lambda
        init_error = {"errorType": type(error).__name__, "errorMessage": str(error)}
        traceback.print_exc()
        handler = None
    for line in sys.stdin:
        request = json.loads(line)
        if handler is None:
            replies.write(json.dumps({"error": init_error}) + "\n")
            continue
        context = LambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            aws_request_id=request["request_id"],
            invoked_function_arn=request["function_arn"],
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")),
            log_group_name=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
        )
        try:
            reply: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as error:
            traceback.print_exc()
            reply = {"error": {"errorType": type(error).__name__, "errorMessage": str(error)}}
        replies.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
