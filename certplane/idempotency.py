"""Retry-safe issue and renew: one idempotency key, one certificate (Powertools idempotency).

Powertools' idempotency package loads boto3 with s3transfer and multiprocessing, about a
tenth of a handler's cold start, and only requests that carry an idempotency key need it
(the management API's and the workflows', never the EST or Certifier doors'). So it is
imported, and its store made, when the first such request arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from certplane.errors import Conflict

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig

    StoreSource = BasePersistenceLayer | Callable[[], BasePersistenceLayer]

# The key is the caller's key within its tenant; a reused key must come with the same request
# (every field a caller can set), or it is refused.
EVENT_KEY = "[tenant, idempotency_key]"
PAYLOAD_FIELDS = (
    "[operation, profile, csr, reference, validity_days, subject_override,"
    " san_override, device_id, owner, tags]"
)


class RunOnce:
    """Calls `function(request=payload)` at most once per tenant and key within the TTL."""

    def __init__(
        self,
        function: Callable[..., dict[str, Any]],
        store: StoreSource,
        expires_after_seconds: int,
    ) -> None:
        """`store` is a persistence layer, or a function making one at the first keyed call."""
        self._function = function
        self._store = store
        self._expires_after_seconds = expires_after_seconds
        self._config: IdempotencyConfig | None = None
        self._wrapped: Callable[..., dict[str, Any]] | None = None
        self._lambda_context: Any = None

    def bind_lambda_context(self, context: Any) -> None:
        """Let an in-progress record expire with the invocation that wrote it."""
        self._lambda_context = context
        if self._config is not None:
            self._config.register_lambda_context(context)

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        try:
            return self._run()(request=payload)
        except IdempotencyValidationError:
            raise Conflict(
                "idempotency_key_reused",
                "this idempotency key was already used for a different request",
            ) from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict(
                "idempotency_in_progress",
                "a request with this idempotency key is still in progress; retry shortly",
            ) from None

    def _run(self) -> Callable[..., dict[str, Any]]:
        if self._wrapped is None:
            from aws_lambda_powertools.utilities.idempotency import (
                BasePersistenceLayer,
                IdempotencyConfig,
                idempotent_function,
            )

            self._config = IdempotencyConfig(
                event_key_jmespath=EVENT_KEY,
                payload_validation_jmespath=PAYLOAD_FIELDS,
                expires_after_seconds=self._expires_after_seconds,
                raise_on_no_idempotency_key=True,
            )
            if self._lambda_context is not None:
                self._config.register_lambda_context(self._lambda_context)
            store = self._store
            if not isinstance(store, BasePersistenceLayer):
                store = store()
            self._wrapped = idempotent_function(
                data_keyword_argument="request", persistence_store=store, config=self._config
            )(self._function)
        return self._wrapped
