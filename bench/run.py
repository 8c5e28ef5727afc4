"""`python -m bench.run [--quick] [--e2e-seconds S]` (or `make bench`): run every measurement,
write bench/results.json, print a table. `--quick` shrinks every size for a smoke run and skips
the cost model and the end-to-end run (`--e2e-seconds 5` adds a short one); its numbers are not
the published ones.

Nothing here asserts a time: machines differ, so the numbers are recorded and compared by
people (docs/performance.md), and the ratios are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import cost, e2e, imports, renewal, signing, status

RESULTS = Path(__file__).resolve().parent / "results.json"
# Issue 8's goals, shown next to the measurement (never asserted).
GOALS = {
    "engine_vs_raw_sign_ratio": "≥ 0.6",
    "renewal_discovery_scale_ratio": "≤ 1.5",
    "import_ms.lambdas.est": "≤ 300",
    "e2e_certs_per_s": "≥ 231",
    "e2e_p99_ms": "≤ 250",
    "e2e_errors": "0",
    "e2e_events_missing": "0",
    "e2e_records_missing": "0",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does (full run, or a quick smoke run)."""

    sign_count: int
    sign_rounds: int
    renewal_base: int
    renewal_due: int
    renewal_rounds: int
    crl_sizes: tuple[int, ...]
    ocsp_requests: int
    ocsp_rounds: int
    import_repeats: int
    import_handlers: tuple[str, ...] = imports.HANDLERS
    e2e_seconds: float = 60.0  # 0 skips the end-to-end run (it starts `certplane dev`)
    cost_samples: int = 20  # 0 skips the cost model's measured issuance run


FULL = Sizes(2000, 7, 500, 50, 5, (10_000, 100_000), 2000, 5, 5)
# The smoke run stays in process; `--e2e-seconds 5` adds a short end-to-end run to it.
QUICK = Sizes(50, 2, 20, 4, 1, (10, 100), 20, 1, 1, e2e_seconds=0.0, cost_samples=0)


def measurements(sizes: Sizes) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    return [
        ("signing", lambda: signing.measure(sizes.sign_count, sizes.sign_rounds)),
        (
            "renewal discovery",
            lambda: renewal.measure(sizes.renewal_base, sizes.renewal_due, sizes.renewal_rounds),
        ),
        ("CRL shards", lambda: status.measure_crl(sizes.crl_sizes)),
        ("OCSP", lambda: status.measure_ocsp(sizes.ocsp_requests, sizes.ocsp_rounds)),
        ("handler imports", lambda: imports.measure(sizes.import_repeats, sizes.import_handlers)),
        *(
            [("cost per million certificates", lambda: cost.measure(sizes.cost_samples))]
            if sizes.cost_samples > 0
            else []
        ),
        *(
            [("end to end against certplane dev", lambda: e2e.measure(sizes.e2e_seconds))]
            if sizes.e2e_seconds > 0
            else []
        ),
    ]


def environment() -> dict[str, Any]:
    """Enough about the machine to compare runs."""
    return {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cryptography": metadata.version("cryptography"),
        "moto": metadata.version("moto"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def run(sizes: Sizes, console: Console | None = None) -> dict[str, Any]:
    """Every measurement, in order; the merged results."""
    results: dict[str, Any] = {}
    for label, measure in measurements(sizes):
        if console is not None:
            console.log(f"measuring {label}…")
        results.update(measure())
    if results.get("e2e_certs_per_s") and results.get("engine_certs_per_s"):
        # Same run, same machine: how much of the bare engine's rate survives the whole path.
        results["e2e_vs_engine_ratio"] = round(
            results["e2e_certs_per_s"] / results["engine_certs_per_s"], 4
        )
    return results


def flatten(results: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def table(results: dict[str, Any]) -> Table:
    view = Table(title="certplane benchmarks")
    view.add_column("measurement")
    view.add_column("value", justify="right")
    view.add_column("goal", justify="right")
    for name, value in flatten(results):
        if name.startswith(("environment.", "cost_assumptions.")):
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        view.add_row(name, f"{value:,}" if number else str(value), GOALS.get(name, ""))
    return view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--e2e-seconds", type=float, help="end-to-end run length (full: 60, quick: 0 = skip)"
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    sizes = QUICK if args.quick else FULL
    if args.e2e_seconds is not None:
        sizes = dataclasses.replace(sizes, e2e_seconds=args.e2e_seconds)
    results = run(sizes, console)
    document = {"quick": args.quick, "environment": environment(), **results}
    args.output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    Console().print(table(document))
    console.log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
