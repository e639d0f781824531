"""The sandbox's fixed-window rate limiter (sandbox/ratelimit.py), on an injected clock."""
from __future__ import annotations

from typing import List

from flask_havn.sandbox.ratelimit import RateLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_down_then_refuses_until_the_window_ends() -> None:
    clock = Clock(1_800_000_010.5)
    limiter = RateLimiter({"login": 3}, clock=clock)
    decisions = [limiter.hit("login") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert {d.limit for d in decisions} == {3}
    assert {d.reset for d in decisions} == {1_800_000_060}  # absolute epoch of the window's end
    assert decisions[0].headers() == {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "2",
                                      "X-RateLimit-Reset": "1800000060"}
    clock.now = 1_800_000_060.0  # next window
    again = limiter.hit("login")
    assert again.allowed and again.remaining == 2 and again.reset == 1_800_000_120


def test_endpoints_are_counted_separately_and_unknown_ones_get_the_default() -> None:
    limiter = RateLimiter({"login": 1}, default_limit=2, clock=Clock(0))
    assert limiter.hit("login").allowed
    assert not limiter.hit("login").allowed
    results: List[bool] = [limiter.hit("transaction").allowed for _ in range(3)]
    assert results == [True, True, False]
    assert limiter.limit_for("vouchers") == 2


def test_reset_forgets_the_counts() -> None:
    limiter = RateLimiter({"login": 1}, clock=Clock(0))
    limiter.hit("login")
    assert not limiter.hit("login").allowed
    limiter.reset()
    assert limiter.hit("login").allowed
