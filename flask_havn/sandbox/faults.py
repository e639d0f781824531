"""Fault injection for the sandbox's API: WSGI middleware, no Flask.

Wraps the sandbox app and, for paths under ``/api/`` only, turns some requests
into the failures a real network and a real HAVN produce, so retry and
idempotency code can be tested::

    {"seed": 7,                       # draws come from random.Random(seed): reproducible
     "rates": {"500": 0.1, "502": 0, "503": 0, "429": 0, "drop": 0.05, "hang": 0},
     "latency": 0.2,                  # seconds added to every API answer
     "hang_seconds": 30,              # how long a "hang" stalls before answering 504
     "burst_429": 3}                  # the next 3 API requests answer 429, then normal

* ``500``/``502``/``503``/``429`` answer HAVN-style JSON *before* the app runs
  (nothing is stored), with ``X-RateLimit-*`` headers like every HAVN answer:
  a 429 with Remaining 0, the others with requests left (so Reset is no wait).
* ``drop`` runs the app (HAVN stored the request), then closes the connection
  without any answer. Under werkzeug's server the socket is shut down and
  :class:`ConnectionDropped` (a ``ConnectionError``, which werkzeug treats as a
  client disconnect) is raised; in-process the :mod:`~.adapter` turns it into
  ``requests.ConnectionError``.
* ``hang`` stalls ``hang_seconds`` (woken early by :meth:`FaultInjector.clear`,
  ``configure`` or ``close``) and answers 504. When the caller put its read timeout in
  ``environ["havn_sandbox.timeout"]`` and it is shorter, the injector waits
  that long and raises :class:`HangTimeout` instead (the adapter's
  ``requests.ReadTimeout``).
"""
from __future__ import annotations

import json
import logging
import math
import random
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .ratelimit import WINDOW_SECONDS

__all__ = [
    "FaultInjector",
    "ConnectionDropped",
    "HangTimeout",
    "FAULT_KINDS",
    "TIMEOUT_ENVIRON_KEY",
    "normalise_spec",
]

log = logging.getLogger("flask_havn.sandbox")

#: Fault kinds that ``rates`` may name, in the order a draw is matched against them.
FAULT_KINDS = ("500", "502", "503", "429", "drop", "hang")
#: WSGI environ key where an in-process caller puts its read timeout (seconds).
TIMEOUT_ENVIRON_KEY = "havn_sandbox.timeout"

_SPEC_KEYS = ("seed", "rates", "latency", "hang_seconds", "burst_429")
_DEFAULT_HANG_SECONDS = 30.0
_MAX_SECONDS = 3600.0

_ERRORS = {
    "500": ("500 INTERNAL SERVER ERROR", "InternalServerError",
            "HAVN had an internal error (injected fault); retry the request later"),
    "502": ("502 BAD GATEWAY", "BadGateway",
            "HAVN's gateway got no valid answer upstream (injected fault); retry the request later"),
    "503": ("503 SERVICE UNAVAILABLE", "ServiceUnavailable",
            "HAVN is temporarily unavailable (injected fault); retry the request later"),
    "429": ("429 TOO MANY REQUESTS", "RateLimitExceeded",
            "Rate limit exceeded (injected fault); retry after X-RateLimit-Reset"),
    "504": ("504 GATEWAY TIMEOUT", "GatewayTimeout",
            "HAVN did not answer in time (injected hang); retry the request later"),
}


class ConnectionDropped(ConnectionError):
    """An injected ``drop``: the request was processed but no answer is sent."""


class HangTimeout(TimeoutError):
    """An injected ``hang`` outlasted the in-process caller's read timeout."""


def _number(key: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"fault spec {key!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or not low <= number <= high:
        raise ValueError(f"fault spec {key!r} must be between {low:g} and {high:g}, got {value!r}")
    return number


def normalise_spec(spec: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Validate a fault spec and return it with every key filled in.

    Raises ``ValueError`` naming the bad key and the accepted values.
    """
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError("a fault spec must be a JSON object like {\"rates\": {\"500\": 0.1}}")
    unknown = sorted(str(k) for k in spec if k not in _SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown fault spec key(s) {', '.join(unknown)}; use {', '.join(_SPEC_KEYS)}")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("fault spec 'seed' must be an integer (or null for unseeded draws)")
    raw_rates = spec.get("rates") or {}
    if not isinstance(raw_rates, Mapping):
        raise ValueError("fault spec 'rates' must be an object mapping a fault kind to a probability")
    rates: Dict[str, float] = {}
    for kind, value in raw_rates.items():
        name = str(kind)
        if name not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {name!r} in 'rates'; use {', '.join(FAULT_KINDS)}")
        rate = _number(f"rates.{name}", value, low=0.0, high=1.0)
        if rate:
            rates[name] = rate
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError("fault spec 'rates' add up to more than 1; lower some probabilities")
    burst = spec.get("burst_429", 0)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        raise ValueError("fault spec 'burst_429' must be a whole number of requests, 0 or more")
    return {
        "seed": seed,
        "rates": rates,
        "latency": _number("latency", spec.get("latency", 0), low=0.0, high=_MAX_SECONDS),
        "hang_seconds": _number("hang_seconds", spec.get("hang_seconds", _DEFAULT_HANG_SECONDS),
                                low=0.0, high=_MAX_SECONDS),
        "burst_429": burst,
    }


def _read_timeout(environ: Mapping[str, Any]) -> Optional[float]:
    value = environ.get(TIMEOUT_ENVIRON_KEY)
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


class FaultInjector:
    """WSGI middleware that injects failures into requests under ``/api/``.

    ``sleep`` waits for latency and hangs (default: an interruptible wait that
    :meth:`clear`, :meth:`configure` and :meth:`close` cut short); ``clock`` gives epoch seconds for the
    ``X-RateLimit-Reset``; ``rate_limit`` is the ``X-RateLimit-Limit`` shown on
    every injected answer.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        spec: Optional[Mapping[str, Any]] = None,
        *,
        sleep: Optional[Callable[[float], None]] = None,
        clock: Callable[[], float] = time.time,
        rate_limit: int = 60,
    ) -> None:
        self.app = app
        self.clock = clock
        self.rate_limit = rate_limit
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set to release every current latency/hang wait
        self._closed = False
        self._sleep = sleep or self._interruptible_sleep
        self._spec: Optional[Dict[str, Any]] = None
        self._burst_left = 0
        self._random = random.Random()
        self._stats: Dict[str, int] = {}
        if spec:
            self.configure(spec)
        else:
            self.clear()

    # -- configuration -------------------------------------------------------

    def configure(self, spec: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """Replace the active spec (validated) and restart draws and counters."""
        normal = normalise_spec(spec)
        with self._lock:
            self._release_waits()
            self._spec = normal
            self._burst_left = normal["burst_429"]
            self._random = random.Random(normal["seed"])
            self._stats = self._empty_stats()
        log.info("sandbox faults configured: %s", normal)
        return dict(normal, rates=dict(normal["rates"]))

    def clear(self) -> None:
        """Stop injecting faults, release stalled hangs (they answer 504 now), zero the counters."""
        with self._lock:
            self._release_waits()
            self._spec = None
            self._burst_left = 0
            self._random = random.Random()
            self._stats = self._empty_stats()

    @property
    def spec(self) -> Optional[Dict[str, Any]]:
        """The active normalised spec, or ``None`` when no faults are set."""
        with self._lock:
            if self._spec is None:
                return None
            return dict(self._spec, rates=dict(self._spec["rates"]))

    def stats(self) -> Dict[str, int]:
        """API requests seen and how many got each fault since the last configure/clear."""
        with self._lock:
            return dict(self._stats, burst_429_remaining=self._burst_left)

    def close(self) -> None:
        """Wake every stalled hang or latency wait now and make later ones instant."""
        with self._lock:
            self._closed = True
            self._wake.set()

    def _release_waits(self) -> None:
        # Under the lock: wake the current waiters; later ones wait on a fresh event (unless closed).
        self._wake.set()
        if not self._closed:
            self._wake = threading.Event()

    @staticmethod
    def _empty_stats() -> Dict[str, int]:
        stats = {"requests": 0, "passed": 0, "burst_429": 0, "latency": 0}
        stats.update({kind: 0 for kind in FAULT_KINDS})
        return stats

    def _interruptible_sleep(self, seconds: float) -> None:
        with self._lock:
            wake = self._wake
        if seconds > 0:
            wake.wait(seconds)

    # -- the middleware ------------------------------------------------------

    def _decide(self) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
        """Pick this request's fault (or ``None``) and count it; one draw per request."""
        with self._lock:
            spec = self._spec
            if spec is None:
                return None, None
            self._stats["requests"] += 1
            if spec["latency"]:
                self._stats["latency"] += 1
            if self._burst_left > 0:
                self._burst_left -= 1
                self._stats["burst_429"] += 1
                return "burst_429", spec
            chosen: Optional[str] = None
            if spec["rates"]:
                draw = self._random.random()
                edge = 0.0
                for kind in FAULT_KINDS:
                    edge += spec["rates"].get(kind, 0.0)
                    if draw < edge:
                        chosen = kind
                        break
            self._stats[chosen or "passed"] += 1
            return chosen, spec

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("PATH_INFO", "")).startswith("/api/"):
            return self.app(environ, start_response)
        fault, spec = self._decide()
        if spec is None:
            return self.app(environ, start_response)
        if spec["latency"]:
            self._sleep(spec["latency"])
        if fault is None:
            return self.app(environ, start_response)
        log.info("sandbox fault %s injected on %s %s", fault, environ.get("REQUEST_METHOD"),
                 environ.get("PATH_INFO"))
        if fault == "drop":
            return self._drop(environ)
        if fault == "hang":
            return self._hang(environ, start_response, spec["hang_seconds"])
        return self._error("429" if fault == "burst_429" else fault, start_response)

    def _error(self, code: str, start_response: Callable[..., Any]) -> List[bytes]:
        status, error, message = _ERRORS[code]
        body = json.dumps({"error": error, "message": message}).encode("utf-8")
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-Id", "req_" + uuid.uuid4().hex),
        ]
        headers += self._rate_limit_headers(code)
        start_response(status, headers)
        return [body]

    def _rate_limit_headers(self, code: str) -> List[Tuple[str, str]]:
        """``X-RateLimit-*`` for an injected answer: HAVN sends them on every answer.

        A 429 says the window is spent (Remaining 0, Reset in 3 s); a 5xx/504
        says this request was the window's first (Remaining ``rate_limit - 1``,
        Reset at the end of the current 60-second window, aligned like the
        sandbox's limiter), so a client must not read Reset as a wait.
        """
        now = self.clock()
        if code == "429":
            remaining, reset = 0, int(now) + 3
        else:
            remaining, reset = max(0, self.rate_limit - 1), (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
        return [
            ("X-RateLimit-Limit", str(self.rate_limit)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(reset)),
        ]

    def _drop(self, environ: Dict[str, Any]) -> List[bytes]:
        """Run the app to completion, then vanish without answering."""

        def swallow(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
            return lambda data: None

        result = self.app(environ, swallow)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionDropped("connection dropped by the HAVN sandbox (injected fault) after processing")

    def _hang(self, environ: Dict[str, Any], start_response: Callable[..., Any], seconds: float) -> List[bytes]:
        timeout = _read_timeout(environ)
        if timeout is not None and timeout < seconds:
            self._sleep(timeout)
            raise HangTimeout(f"the HAVN sandbox did not answer within {timeout:g} s (injected hang)")
        self._sleep(seconds)
        return self._error("504", start_response)
