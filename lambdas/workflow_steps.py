"""Lambda entry points of the workflow steps: one function per state machine.

Each handler runs the step its state machine names in the payload (certplane.workflows).
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from certplane.workflows import steps

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def renewal_sweep(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from certplane.workflows.sweep import RenewalSweep, steps_of

    return steps.dispatch(steps_of(RenewalSweep(steps.runtime().lifecycle)), event)


@logger.inject_lambda_context(clear_state=True)
def revocation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from certplane.workflows.revocation import from_runtime, steps_of

    return steps.dispatch(steps_of(from_runtime(steps.runtime())), event)


@logger.inject_lambda_context(clear_state=True)
def approval(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from certplane.workflows.approval import from_runtime, steps_of

    return steps.dispatch(steps_of(from_runtime(steps.runtime())), event)


@logger.inject_lambda_context(clear_state=True)
def bulk(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from certplane.workflows.bulk import from_runtime, steps_of

    return steps.dispatch(steps_of(from_runtime(steps.runtime())), event)
