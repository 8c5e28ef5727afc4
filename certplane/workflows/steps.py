"""What every workflow's step functions share: the runtime, the clock and step dispatch."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

from certplane.errors import RequestRejected
from certplane.resources import CA_DIR_ENV, CONFIG_ENV
from certplane.runtime import Runtime, build_runtime

Step = Callable[..., dict[str, Any]]
_RUNTIMES: dict[tuple[str | None, str | None], Runtime] = {}


def runtime() -> Runtime:
    """One runtime per configuration (a Lambda has one; tests and dev may switch configs)."""
    key = (os.environ.get(CONFIG_ENV), os.environ.get(CA_DIR_ENV))
    if key not in _RUNTIMES:
        _RUNTIMES[key] = build_runtime()
    return _RUNTIMES[key]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dispatch(steps: dict[str, Step], event: dict[str, Any]) -> dict[str, Any]:
    """Run the step the state machine names: `{"step", "state"[, "token"]}` → next state."""
    name = event.get("step")
    step = steps.get(name) if isinstance(name, str) else None
    if step is None:
        raise RequestRejected("unknown_step", f"no workflow step {name!r}")
    state = event.get("state") or {}
    if "token" in event:
        return step(state, token=event["token"])
    return step(state)
