"""Lambda entry point of the OCSP responder (API Gateway / CloudFront origin proxy events)."""

import base64

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.runtime import build_runtime
from certplane.status.service import build_status

logger = Logger()
responder = build_status(build_runtime()).ocsp


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    answer = responder.handle_http(event.get("httpMethod", "GET"), event.get("path", ""), body)
    return {
        "statusCode": answer.status,
        "headers": answer.headers,
        "body": base64.b64encode(answer.body).decode(),
        "isBase64Encoded": True,
    }
