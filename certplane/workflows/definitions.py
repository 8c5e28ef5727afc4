"""The state machines in JSONPath ASL, built from `[workflows]` settings.

JSONPath only (no JSONata, Variables or ItemBatcher) so moto executes the same definitions
`certplane dev` and the tests run. Every Task invokes one step function through
`arn:aws:states:::lambda:invoke` with `{"step": <name>, "state": <state>}` and its result
(`$.Payload`) becomes the next state, so a step is a plain function from state to state.
"""

from __future__ import annotations

from typing import Any

from certplane.config import WorkflowSettings

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"
# Errors worth another try: Lambda's own hiccups and our transient failures (class names of
# the exceptions the steps raise: certplane.errors.ServiceUnavailable, certbridge's engines,
# and the CRL check of the revocation workflow).
TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "ServiceUnavailable",
    "TransientEngineError",
    "CrlNotPublished",
]
DENIED = "Denied"


def _retry(settings: WorkflowSettings) -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": TRANSIENT_ERRORS,
            "IntervalSeconds": settings.retry_interval_seconds,
            "MaxAttempts": settings.retry_max_attempts,
            "BackoffRate": settings.retry_backoff_rate,
        }
    ]


def _step(
    function: str,
    step: str,
    settings: WorkflowSettings,
    *,
    next_state: str | None = None,
    state: str = "$",
    catch: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function, "Payload": {"step": step, "state.$": state}},
        "OutputPath": "$.Payload",
        "Retry": _retry(settings),
    }
    if catch:
        task["Catch"] = catch
    if next_state:
        task["Next"] = next_state
    else:
        task["End"] = True
    return task


def _distributed(start_at: str, states: dict[str, Any]) -> dict[str, Any]:
    """A Map processor whose iterations are child executions: their events do not count
    toward the parent's 25,000-event history, so a sweep or bulk operation of a large fleet
    does not run out of history (an inline Map would after a few thousand certificates)."""
    return {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": start_at,
        "States": states,
    }


def uses_distributed_map(definition: dict[str, Any]) -> bool:
    """True when a Map state runs child executions (its role must be allowed to start them)."""
    return any(
        state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
        for state in definition["States"].values()
    )


def _loop(variable: str, again: str, done: str) -> dict[str, Any]:
    return {
        "Type": "Choice",
        "Choices": [{"Variable": variable, "BooleanEquals": False, "Next": again}],
        "Default": done,
    }


def renewal_sweep(settings: WorkflowSettings, function: str) -> dict[str, Any]:
    """Plan the tenants, sweep each one's expiry window page by page, then sum up."""
    per_tenant = _distributed(
        "SweepPage",
        {
            "SweepPage": _step(function, "sweep_page", settings, next_state="MorePages"),
            "MorePages": _loop("$.done", "SweepPage", "TenantSwept"),
            "TenantSwept": {"Type": "Succeed"},
        },
    )
    return {
        "Comment": "certplane renewal sweep: Certificate Expiring / Expired, auto-renewal",
        "StartAt": "Plan",
        "States": {
            "Plan": _step(function, "plan", settings, next_state="Tenants"),
            "Tenants": {
                "Type": "Map",
                "ItemsPath": "$.tenants",
                "MaxConcurrency": settings.sweep_tenant_concurrency,
                "ItemProcessor": per_tenant,
                "ResultPath": "$.tenants",
                "Next": "Summarize",
            },
            "Summarize": _step(function, "summarize", settings),
        },
    }


def revocation(settings: WorkflowSettings, function: str) -> dict[str, Any]:
    """Revoke through the lifecycle, then regenerate the certificate's CRL shard (retried)."""
    refused = {"ErrorEquals": ["Conflict", "NotFound", "RequestRejected"], "Next": "Refused"}
    return {
        "Comment": "certplane revocation: revoke, then publish the due CRL shards",
        "StartAt": "Revoke",
        "States": {
            "Revoke": _step(function, "revoke", settings, next_state="PublishCrl", catch=[refused]),
            "PublishCrl": _step(function, "publish_crl", settings),
            "Refused": {"Type": "Fail", "Error": "RevocationRefused", "Cause": "see the error"},
        },
    }


def approval_issuance(settings: WorkflowSettings, function: str) -> dict[str, Any]:
    """Wait for a human decision (task token), then issue; a denial or timeout fails."""
    return {
        "Comment": "certplane approval-gated issuance (waitForTaskToken)",
        "StartAt": "AwaitDecision",
        "States": {
            "AwaitDecision": {
                "Type": "Task",
                "Resource": LAMBDA_INVOKE_WAIT,
                "Parameters": {
                    "FunctionName": function,
                    "Payload": {
                        "step": "await_decision",
                        "state.$": "$",
                        "token.$": "$$.Task.Token",
                    },
                },
                "TimeoutSeconds": settings.approval_timeout_seconds,
                "ResultPath": "$.decision",
                "Retry": _retry(settings),
                "Catch": [
                    {
                        "ErrorEquals": [DENIED, "States.Timeout"],
                        "ResultPath": "$.error",
                        "Next": "RecordDenial",
                    }
                ],
                "Next": "Issue",
            },
            "Issue": _step(
                function,
                "issue",
                settings,
                next_state="Issued",
                catch=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": "$.error",
                        "Next": "RecordFailure",
                    }
                ],
            ),
            "Issued": {"Type": "Succeed"},
            "RecordFailure": _step(function, "record_failure", settings, next_state="IssueFailed"),
            "IssueFailed": {"Type": "Fail", "Error": "IssuanceFailed", "Cause": "the CA refused"},
            "RecordDenial": _step(function, "record_denial", settings, next_state="Denied"),
            "Denied": {"Type": "Fail", "Error": DENIED, "Cause": "the request was not approved"},
        },
    }


def bulk_operation(settings: WorkflowSettings, function: str) -> dict[str, Any]:
    """Select a page of certificates, revoke or reissue each (Map), repeat, then summarize."""
    per_certificate = _distributed(
        "Apply",
        {
            "Apply": _step(
                function,
                "apply",
                settings,
                catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Count"}],
            ),
            "Count": _step(function, "count_failure", settings),
        },
    )
    return {
        "Comment": "certplane bulk revoke / reissue with progress",
        "StartAt": "Select",
        "States": {
            "Select": _step(function, "select", settings, next_state="Certificates"),
            "Certificates": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "serial.$": "$$.Map.Item.Value",
                    "operation.$": "$.operation",
                },
                "MaxConcurrency": settings.bulk_max_concurrency,
                "ItemProcessor": per_certificate,
                "ResultPath": None,
                "Next": "MoreCertificates",
            },
            "MoreCertificates": _loop("$.done", "Select", "Finish"),
            "Finish": _step(function, "finish", settings),
        },
    }
