"""Issue 8: the benchmark code runs end to end at tiny sizes and writes every key it promises.

Only structure is asserted, never a time or a ratio: `make bench` measures, tests do not.
"""

from __future__ import annotations

import dataclasses
import json

from bench import imports
from bench import run as bench_run

TOP_LEVEL_KEYS = {
    "engine_vs_raw_sign_ratio",
    "renewal_discovery_scale_ratio",
    "crl_shard_seconds",
    "crl_shard_bytes",
    "ocsp_responses_per_s",
    "import_ms",
}


def test_quick_run_writes_every_key(tmp_path, monkeypatch):
    smaller = dataclasses.replace(
        bench_run.QUICK, sign_count=10, crl_sizes=(5, 10), import_handlers=("lambdas.ocsp",)
    )
    monkeypatch.setattr(bench_run, "QUICK", smaller)
    output = tmp_path / "results.json"
    assert bench_run.main(["--quick", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["quick"] is True
    assert set(results) >= TOP_LEVEL_KEYS
    assert set(results["crl_shard_seconds"]) == set(results["crl_shard_bytes"]) == {"5", "10"}
    assert set(results["import_ms"]) == {"lambdas.ocsp"}
    for name in ("engine_vs_raw_sign_ratio", "renewal_discovery_scale_ratio"):
        assert isinstance(results[name], float) and results[name] > 0
    assert results["renewal_discovery_reads"]["1x"]["items_read"] > 0
    assert isinstance(results["ocsp_responses_per_s"], int)


def test_importtime_parsing():
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   certplane.model\n"
        "import time:      2000 |     310250 | lambdas.est\n"
    )
    assert imports.cumulative_us(stderr, "lambdas.est") == 310250
    assert "lambdas.est" in imports.HANDLERS and "lambdas.__init__" not in imports.HANDLERS
