"""Timing helpers: best-of-N wall time, so a noisy machine hurts both sides alike."""
from __future__ import annotations

import time
from typing import Callable


def best_of(fn: Callable[[], object], *, repeat: int, number: int) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def report(name: str, ours: float, baseline: float, baseline_name: str) -> None:
    """One line: our time, the baseline's, and the ratio (below 1.0: we are faster)."""
    print(f"{name:<44} ours {ours * 1e6:9.1f} µs   {baseline_name} {baseline * 1e6:9.1f} µs   "
          f"ratio {ours / baseline:5.2f}")
