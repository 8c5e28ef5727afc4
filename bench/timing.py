"""Interleaved, repeated measurements: a noisy machine slows every contender of a round alike,
so ratios are taken per round (side by side) and the median of the rounds is reported."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def seconds(work: Callable[[], object]) -> float:
    """Wall time of one call of `work` (perf_counter: monotonic, highest resolution)."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each contender, run in turn within every round (A B A B …)."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            samples[name].append(seconds(work))
    return samples


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator[i] / denominator[i] (paired, same round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


@contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one CPU while measuring "per core" rates (restored afterwards)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(previous)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
