"""import_ms per Lambda handler module: `python -X importtime -c "import lambdas.X"` in a fresh
interpreter, the cumulative time of the handler module itself (its imports and its module-level
wiring, i.e. what a cold start pays before the first event). Goal ≤ 300 ms for EST."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = tuple(
    sorted(
        f"lambdas.{path.stem}"
        for path in (ROOT / "lambdas").glob("*.py")
        if path.stem != "__init__"
    )
)


def cumulative_us(stderr: str, module: str) -> int:
    """The cumulative microseconds `-X importtime` reports for `module`."""
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[2].strip() == module:
            return int(fields[1])
    raise ValueError(f"{module} is not in the -X importtime output")


def _environment(folder: Path) -> dict[str, str]:
    """A Lambda-like environment: fake credentials, a CA folder made once before timing."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "CERTPLANE_", "PYTHON"))
    }
    environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="1",
        CERTPLANE_CA_DIR=str(folder / "ca"),
        CERTPLANE_OCSP_DIR=str(folder / "ocsp"),
    )
    return environ


def import_ms(module: str, environ: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"import {module} failed: {result.stderr[-2000:]}")
    return cumulative_us(result.stderr, module) / 1000


def measure(repeats: int = 5, handlers: tuple[str, ...] = HANDLERS) -> dict[str, dict[str, float]]:
    """Median import milliseconds per handler module over `repeats` fresh interpreters."""
    with tempfile.TemporaryDirectory() as folder:
        environ = _environment(Path(folder))
        for module in handlers:  # first imports create the CA files; not timed
            import_ms(module, environ)
        times: dict[str, list[float]] = {module: [] for module in handlers}
        for _ in range(repeats):
            for module in handlers:
                times[module].append(import_ms(module, environ))
    return {"import_ms": {m: round(statistics.median(t), 1) for m, t in times.items()}}
