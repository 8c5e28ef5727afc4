"""Routes a signing request along a profile's route, failing over on transient errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from certbridge.interface import (
    CAEngine,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.lint import lint_signing_request

logger = logging.getLogger(__name__)


class EngineRouter:
    """Holds the registered engines by id and tries a route's engines in order."""

    def __init__(self, engines: Mapping[str, CAEngine]) -> None:
        self._engines = dict(engines)

    def engine(self, engine_id: str) -> CAEngine:
        try:
            return self._engines[engine_id]
        except KeyError:
            raise PermanentEngineError(f"no CA engine is registered as {engine_id!r}") from None

    @property
    def engine_ids(self) -> tuple[str, ...]:
        return tuple(self._engines)

    def issue(self, route: Sequence[str], request: SigningRequest) -> tuple[str, IssuedCertificate]:
        """Sign through the first engine of the route that answers; returns (engine id, result).

        Only transient errors fail over: a permanent error means the request is wrong for
        the route, and trying the next engine would hide that.
        """
        if not route:
            raise PermanentEngineError("the route names no CA engine")
        last_error: TransientEngineError | None = None
        for engine_id in route:
            engine = self.engine(engine_id)
            try:
                lint_signing_request(request, engine.capabilities())
                return engine_id, engine.issue(request)
            except TransientEngineError as error:
                logger.warning("engine %s unavailable, failing over: %s", engine_id, error)
                last_error = error
        raise TransientEngineError(f"every engine of route {list(route)} failed: {last_error}")
