"""The sandbox's rate limiter: a fixed 60-second window per endpoint name.

The sandbox serves exactly one SaaS company, so the key is only the endpoint
name (``"transaction"``, ``"login"``…). Windows are aligned to the clock's
minute boundaries, which makes ``X-RateLimit-Reset`` (absolute epoch seconds,
as HAVN sends it) the same for every caller in a window. No Flask here.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Tuple

__all__ = ["RateLimiter", "RateLimitDecision", "WINDOW_SECONDS"]

#: Length of one rate-limit window, in seconds.
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimitDecision:
    """The outcome of one hit: allowed or not, and the three ``X-RateLimit-*`` values."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # absolute epoch seconds at which the window ends

    def headers(self) -> Dict[str, str]:
        """The ``X-RateLimit-*`` headers HAVN sends on every API answer."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Count requests per endpoint name in fixed windows; thread-safe.

    ``limits`` maps an endpoint name to its requests per minute; names not in
    it get ``default_limit``. ``clock`` returns epoch seconds (tests inject one).
    """

    def __init__(
        self,
        limits: Mapping[str, int],
        *,
        default_limit: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits: Dict[str, int] = {str(k): int(v) for k, v in limits.items()}
        self.default_limit = int(default_limit)
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: Dict[str, Tuple[int, int]] = {}  # name -> (window index, hits)

    def limit_for(self, name: str) -> int:
        """Requests per window allowed for ``name``."""
        return self.limits.get(name, self.default_limit)

    def hit(self, name: str) -> RateLimitDecision:
        """Count one request to ``name`` and say whether it is within the limit.

        A refused request still counts against nothing: the window stays full
        until it resets, exactly like a fixed-window limiter on the server.
        """
        limit = self.limit_for(name)
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS
        with self._lock:
            current, hits = self._windows.get(name, (window, 0))
            if current != window:
                hits = 0
            if hits >= limit:
                self._windows[name] = (window, hits)
                return RateLimitDecision(False, limit, 0, reset)
            hits += 1
            self._windows[name] = (window, hits)
            return RateLimitDecision(True, limit, max(0, limit - hits), reset)

    def reset(self) -> None:
        """Forget every window (the sandbox's ``/_sandbox/reset``)."""
        with self._lock:
            self._windows.clear()
