"""Timing helpers: every figure is a ratio of two things measured side by side in one run.

Runs of A and B are interleaved (A B A B ...) so that drift on a shared machine (other processes,
thermal state) hits both sides alike; each side's figure is the median of its repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Figure:
    key: str
    value: float | None
    unit: str = ""
    goal: str = ""  # e.g. "<= 1.05"
    detail: dict = field(default_factory=dict)
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or not self.goal:
            return None
        op, _, target = self.goal.partition(" ")
        target = float(target)
        return self.value <= target if op == "<=" else self.value >= target


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(a: Callable[[], object], b: Callable[[], object], *, repeats: int = 5,
                 warmup: int = 1) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, measured interleaved after ``warmup`` runs of each."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for i in range(repeats):
        # alternate which goes first so neither always runs on a "fresh" or "tired" machine
        if i % 2:
            tb.append(timed(b))
            ta.append(timed(a))
        else:
            ta.append(timed(a))
            tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))
