"""Timing helpers: best-of-N wall time with candidates taking turns, so a noisy machine hurts all alike."""
from __future__ import annotations

import time
from typing import Callable, Dict, Mapping, Optional


def best_of_alternating(candidates: Mapping[str, Callable[[], object]], *, rounds: int,
                        number: int) -> Dict[str, float]:
    """Seconds per call of each candidate: the best of ``rounds`` runs of ``number`` calls.

    The candidates take turns round by round (their order reversed every other
    round), so a slow spell of a shared machine lands on all of them alike.
    """
    names = list(candidates)
    best = {name: float("inf") for name in names}
    for round_no in range(rounds):
        for name in (names if round_no % 2 == 0 else names[::-1]):
            fn = candidates[name]
            started = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - started) / number)
    return best


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f} ms" if seconds >= 0.01 else f"{seconds * 1e6:9.1f} µs"


def report(name: str, ours: float, baseline: float, baseline_name: str, *, goal: Optional[float] = None) -> None:
    """One line: our time, the baseline's, the ratio (below 1.0: we are faster) and the goal if any."""
    line = (f"{name:<44} ours {_duration(ours)}   {baseline_name} {_duration(baseline)}   "
            f"ratio {ours / baseline:5.2f}")
    if goal is not None:
        line += f"   goal ≤ {goal:.2f} ({'met' if ours / baseline <= goal else 'NOT met'})"
    print(line)
