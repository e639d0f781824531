"""HTTP transport to HAVN: a pooled session per thread, signing, deadlines, retries, error mapping. No Flask.

One :class:`Transport` per app (the extension keeps it in ``app.extensions``);
clients borrow it. Each thread gets its own ``requests.Session`` (``requests``
does not promise one is safe to share), and each attempt a total deadline of
``timeout`` seconds (:mod:`flask_havn._deadline`). Wire choices, each deliberate:

* POST bodies are exactly ``signing.canonical_json(payload)`` — the bytes that
  are signed are the bytes that are sent (contract §11.3), so HAVN can verify
  either by re-serialising (what it does for the official SDK) or over the raw
  body.
* A GET signs ``{}`` (contract §2); its params travel in the query string,
  ``None`` dropped, booleans as ``True``/``False`` exactly like the official
  SDK (the form HAVN is known to accept).
* ``Content-Type: application/json`` only on requests that carry a body
  (contract §11.11); ``Accept: application/json`` always.
* Every POST carries an ``Idempotency-Key``: the caller's, or a uuid4 hex made
  once per call and reused by every retry of that call, so retrying a POST
  cannot create a duplicate on a server that honours the key.
* Retries are our own loop (not urllib3's) so ``X-RateLimit-Reset`` (only when
  the limit is spent: HAVN sends it on every answer) and ``Retry-After`` are
  honoured and, once retries are spent, a 429 raises
  :class:`HAVNRateLimitError` and a 5xx :class:`HAVNAPIError` (the official
  SDK turns both into a network error, contract §5).
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import socket
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import urlparse

from ._version import __version__
from .errors import (
    HAVNAPIError,
    HAVNAuthError,
    HAVNConfigError,
    HAVNConflictError,
    HAVNNetworkError,
    HAVNNotFoundError,
    HAVNRateLimitError,
    HAVNValidationError,
    redact,
)
from .signing import canonical_json, sign_body

if TYPE_CHECKING:  # pragma: no cover
    # requests (and urllib3 below it) is imported on the first session a transport makes, not with
    # this module: an app that builds its transport at init_app starts without it (bench_coldstart).
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

__all__ = [
    "Transport",
    "max_call_seconds",
    "error_from_response",
    "RETRY_STATUSES",
    "DEFAULT_BASE_URL",
    "derived_idempotency_key",
    "server_wait_hint",
]

logger = logging.getLogger("flask_havn.transport")

DEFAULT_BASE_URL = "https://api.havn.com"
#: Statuses worth another attempt: rate limited, or a server/gateway failure.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest piece of HAVN's own error text copied into an error message.
_MAX_SERVER_TEXT = 500
#: Parameterless URLs whose prepared form a transport remembers (its endpoints; a handful).
_MAX_REMEMBERED_URLS = 64

_HINTS: Dict[int, str] = {
    400: "HAVN refused the request as invalid; fix the values named above.",
    401: "Check HAVN_API_KEY and HAVN_WEBHOOK_SECRET (no stray whitespace) and that test mode matches the key.",
    403: "This API key may not do this; check the HAVN account's permissions.",
    404: "Check that the referral code, voucher or user named in the request exists in HAVN.",
    409: "HAVN already holds a different request under this idempotency key or gateway transaction id; "
         "use a new payment_gateway_transaction_id for a new charge.",
    422: "HAVN's business rules refused the request (e.g. inactive referral, amount too small); "
         "check the values against the HAVN account's configuration.",
    429: "Too many requests: wait retry_after seconds before calling HAVN again.",
}
_SERVER_HINT = "HAVN had a server error that persisted after retries; try again later or contact HAVN support."


def _is_header_token(value: Any) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= 255 and value.isascii() and value.isprintable()
            and value == value.strip())


def derived_idempotency_key(prefix: str, identity: str) -> str:
    """A stable key for a business identity: ``prefix-`` + 32 hex chars of its SHA-256."""
    return f"{prefix}-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def _redact(text: str, secrets: Sequence[str]) -> str:
    return redact(text, secrets)  # whole tokens for short secrets (errors.redact)


def _redact_obj(value: Any, secrets: Sequence[str]) -> Any:
    """Copy of a parsed JSON value with every secret replaced in its strings."""
    if isinstance(value, str):
        return _redact(value, secrets)
    if isinstance(value, Mapping):
        return {_redact(str(k), secrets): _redact_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_obj(v, secrets) for v in value]
    return value


def _lenient_number(raw: Optional[str]) -> Optional[float]:
    """``"12"``, ``" 12.5 "`` → a float; anything unparseable or non-finite → ``None``."""
    if raw is None:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def _lenient_int(raw: Optional[str]) -> Optional[int]:
    value = _lenient_number(raw)
    return None if value is None else int(value)


def _retry_after_seconds(raw: Optional[str], now: float) -> Optional[float]:
    """``Retry-After`` as delta seconds, or an HTTP date turned into seconds from ``now``."""
    if raw is None:
        return None
    seconds = _lenient_number(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - older Pythons return None
        return None
    return max(0.0, when.timestamp() - now)


def _rate_limited(resp: requests.Response) -> bool:
    """True when the answer says the rate limit is spent: a 429, or ``X-RateLimit-Remaining: 0``."""
    if resp.status_code == 429:
        return True
    remaining = _lenient_number(resp.headers.get("X-RateLimit-Remaining"))
    return remaining is not None and remaining <= 0


def server_wait_hint(resp: requests.Response, now: float) -> Optional[float]:
    """Seconds the server asked us to wait, or ``None`` for no opinion.

    HAVN sends ``X-RateLimit-*`` on *every* answer, so ``X-RateLimit-Reset``
    (absolute epoch) is a wait only when the limit is spent (a 429, or
    ``X-RateLimit-Remaining: 0``); a 503 with requests left waits the normal
    backoff. ``Retry-After`` (seconds or an HTTP date) is always honoured.
    """
    if _rate_limited(resp):
        reset = _lenient_number(resp.headers.get("X-RateLimit-Reset"))
        if reset is not None:
            return max(0.0, reset - now)
    return _retry_after_seconds(resp.headers.get("Retry-After"), now)


def _parse_json(resp: requests.Response) -> Optional[Any]:
    if not resp.content:
        return None
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deep for Python's parser: not an answer
        return None


def error_from_response(
    resp: requests.Response,
    *,
    clock: Callable[[], float] = time.time,
    redact: Sequence[str] = (),
) -> HAVNAPIError:
    """The :class:`HAVNAPIError` subclass for an error response, secrets replaced by ``***``.

    401 → :class:`HAVNAuthError`, 404 → :class:`HAVNNotFoundError`, 409 →
    :class:`HAVNConflictError`, 429 → :class:`HAVNRateLimitError` (with
    ``retry_after``, ``limit``, ``remaining`` from the headers), anything else
    → :class:`HAVNAPIError`. ``.message`` starts with HAVN's own ``message``
    (or "HAVN answered <status>") and ends with what to do.
    """
    status = resp.status_code
    body = _parse_json(resp)
    if body is not None:
        body = _redact_obj(body, redact)
    parsed: Optional[Dict[str, Any]] = body if isinstance(body, dict) else None
    error_type = parsed.get("error") if parsed else None
    error_type = str(error_type) if error_type not in (None, "") else None
    server_message = parsed.get("message") if parsed else None
    server_message = str(server_message) if server_message not in (None, "") else f"HAVN answered {status}"
    if len(server_message) > _MAX_SERVER_TEXT:
        server_message = server_message[:_MAX_SERVER_TEXT] + "…"
    request_id = resp.headers.get("X-Request-Id") or None
    where = ""
    if resp.request is not None and resp.request.method:
        path = urlparse(resp.request.url or "").path
        where = f" on {resp.request.method} {path}"
    label = f"HTTP {status}" + (f" {error_type}" if error_type else "")
    hint = _HINTS.get(status, _SERVER_HINT if status >= 500 else "Check the request against HAVN's API contract.")
    message = _redact(f"{server_message} ({label}{where}). {hint}", redact)
    if request_id:
        message += f" HAVN request id: {request_id}."
    kwargs: Dict[str, Any] = dict(
        status_code=status, error_type=error_type, response=parsed, request_id=request_id
    )
    if status == 429:
        now = clock()
        return HAVNRateLimitError(
            message,
            retry_after=server_wait_hint(resp, now),
            limit=_lenient_int(resp.headers.get("X-RateLimit-Limit")),
            remaining=_lenient_int(resp.headers.get("X-RateLimit-Remaining")),
            **kwargs,
        )
    cls = {401: HAVNAuthError, 404: HAVNNotFoundError, 409: HAVNConflictError}.get(status, HAVNAPIError)
    return cls(message, **kwargs)


#: Longest a transport waits in all between the attempts of one call (backoff, Retry-After…), by default.
DEFAULT_MAX_TOTAL_WAIT = 60.0


def max_call_seconds(timeout: float, max_retries: int, max_total_wait: float) -> float:
    """The longest one :meth:`Transport.request` can take, in seconds: size an outbox lease from it.

    Each of the ``max_retries + 1`` attempts ends by its deadline of ``timeout``
    seconds (connect, send and the whole answer together), and the waits
    between attempts add up to at most ``max_total_wait``: a backoff,
    ``Retry-After`` or ``X-RateLimit-Reset`` wait that would pass it is not
    taken and the call fails instead, so ``backoff_factor`` and the server's
    hints cannot stretch the bound. Not included: name resolution (DNS), which
    is the operating system's, and the time to build the request and parse
    the answer (microseconds).
    """
    return (max_retries + 1) * timeout + max_total_wait


#: Sessions of finished threads kept open for the next new thread (warm connections); more are closed.
_MAX_IDLE_SESSIONS = 8


class _Lease:
    """A thread's hold on one session; when the thread ends, the session goes back to the pool."""

    __slots__ = ("session", "generation", "headers", "__weakref__")

    def __init__(self, session: requests.Session, generation: int, headers: CaseInsensitiveDict) -> None:
        self.session = session
        self.generation = generation
        self.headers = headers


class _ThreadSessions:
    """One ``requests.Session`` per thread, made on first use with every mount; all closed by :meth:`close`.

    A session is never used by two threads at once (``requests`` does not
    promise that is safe). A finished thread's session is kept for the next
    new thread, so a thread per request or per delivery pass still reuses
    open connections.
    """

    def __init__(self, make: Callable[[], Tuple[requests.Session, CaseInsensitiveDict]]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.RLock()
        self._mounts: List[Tuple[str, BaseAdapter]] = []
        self._open: Set[requests.Session] = set()
        self._idle: List[Tuple[requests.Session, CaseInsensitiveDict]] = []
        self._generation = 0

    def lease(self) -> _Lease:
        """The calling thread's session (and its ready-made headers)."""
        lease: Optional[_Lease] = getattr(self._local, "lease", None)
        if lease is not None and lease.generation == self._generation:
            return lease
        with self._lock:
            generation = self._generation
            if self._idle:
                session, headers = self._idle.pop()
            else:
                session, headers = self._make()
                for prefix, adapter in self._mounts:
                    session.mount(prefix, adapter)
                self._open.add(session)
        lease = _Lease(session, generation, headers)
        # A weak reference back: a lease (alive as long as its thread) must not keep the transport alive.
        weakref.finalize(lease, _release_lease, weakref.ref(self), session, headers, generation).atexit = False
        self._local.lease = lease
        return lease

    def _release(self, session: requests.Session, headers: CaseInsensitiveDict, generation: int) -> None:
        """A thread holding ``session`` ended: keep the session for the next thread, or close it."""
        with self._lock:
            if generation == self._generation and len(self._idle) < _MAX_IDLE_SESSIONS:
                self._idle.append((session, headers))
                return
            self._open.discard(session)
        session.close()

    def mount(self, prefix: str, adapter: BaseAdapter) -> None:
        """Mount on every open session and on every session made from now on."""
        with self._lock:
            self._mounts.append((prefix, adapter))
            sessions = list(self._open)
        for session in sessions:
            session.mount(prefix, adapter)

    def close(self) -> None:
        """Close every session made so far; threads get new ones on their next call."""
        with self._lock:
            self._generation += 1
            sessions = list(self._open)
            self._open.clear()
            self._idle.clear()
        for session in sessions:
            session.close()


def _release_lease(pool: "weakref.ref[_ThreadSessions]", session: requests.Session, headers: CaseInsensitiveDict,
                   generation: int) -> None:
    """A lease's thread ended (or its transport went away): hand the session back, or close it."""
    sessions = pool()
    if sessions is None:
        session.close()
    else:
        sessions._release(session, headers, generation)


class Transport:
    """Signs, sends and retries HAVN API calls, each thread over its own pooled ``requests.Session``.

    Safe to share between threads (no per-call state is kept on the instance,
    and no session is used by two threads at once). Each attempt has a total
    deadline of ``timeout`` seconds (connect, send and the whole answer), see
    :func:`max_call_seconds` for a whole call. ``sleep``, ``clock`` and
    ``jitter`` are injectable so tests can record waits instead of sleeping.

    A ``session`` passed in is the caller's: shared by every thread as is
    (the caller keeps it thread-safe), sent through with ``Session.request``
    (its auth, params, hooks and environment apply), never closed here, and
    its adapters bound each read by ``timeout`` but not the attempt in total.
    """

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        test_mode: bool = False,
        max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT,
        session: Optional[requests.Session] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        for name, value in (("api_key", api_key), ("webhook_secret", webhook_secret)):
            if not isinstance(value, str) or not value.strip():
                raise HAVNConfigError(f"{name} is missing: pass {name}=... (HAVN_{name.upper()} in the Flask app)")
            if value != value.strip():
                raise HAVNConfigError(f"{name} has leading or trailing whitespace; remove it (HAVN would answer 401)")
        if not (api_key.isascii() and api_key.isprintable()):
            raise HAVNConfigError("api_key must be printable ASCII (it travels in the X-API-Key header); "
                                  "copy it again from the HAVN dashboard")
        if not isinstance(base_url, str) or not base_url.strip().lower().startswith(("http://", "https://")):
            raise HAVNConfigError("base_url must start with http:// or https:// (HAVN_BASE_URL), "
                                  "e.g. https://api.havn.com")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise HAVNConfigError("max_retries must be an integer of 0 or more (HAVN_MAX_RETRIES)")
        for name, number in (("timeout", timeout), ("backoff_factor", backoff_factor),
                             ("max_total_wait", max_total_wait)):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise HAVNConfigError(f"{name} must be a number of seconds, 0 or more")
        if not timeout > 0:
            raise HAVNConfigError("timeout must be greater than 0 seconds (HAVN_TIMEOUT)")
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_factor = float(backoff_factor)
        self.test_mode = bool(test_mode)
        self.max_total_wait = float(max_total_wait)
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._shared_session = session
        self._sessions = _ThreadSessions(self._new_session)
        self._urls: Dict[str, str] = {}
        self._user_agent: Optional[str] = None

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` header: ``flask-havn/<version> python-requests/<version>``."""
        if self._user_agent is None:
            import requests

            self._user_agent = f"flask-havn/{__version__} python-requests/{requests.__version__}"
        return self._user_agent

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self._user_agent = value

    def _new_session(self) -> Tuple[requests.Session, CaseInsensitiveDict]:
        """A session for one thread, and the headers every call of it starts from."""
        import requests
        from requests.structures import CaseInsensitiveDict

        from ._deadline import DeadlineAdapter

        session = requests.Session()
        # No urllib3 retries: our loop below does them, with headers honoured.
        adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Proxies and CA bundle from the environment, read once for this session instead of on every call.
        found = session.merge_environment_settings(self.base_url, {}, None, None, None)
        session.proxies, session.verify, session.cert = found["proxies"], found["verify"], found["cert"]
        session.trust_env = False
        headers = CaseInsensitiveDict(session.headers)
        headers.update({"User-Agent": self.user_agent, "Accept": "application/json", "X-API-Key": self._api_key})
        return session, headers

    # -- lifecycle ---------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The calling thread's session (or the one passed in), made on first use."""
        return self._shared_session if self._shared_session is not None else self._sessions.lease().session

    def max_call_seconds(self) -> float:
        """The longest one :meth:`request` can take with this transport's settings (see :func:`max_call_seconds`)."""
        return max_call_seconds(self.timeout, self.max_retries, self.max_total_wait)

    def mount(self, prefix: str, adapter: BaseAdapter) -> None:
        """Route URLs starting with ``prefix`` through ``adapter`` (e.g. an in-process sandbox), in every thread.

        Mount before the first call: mounting changes sessions other threads may be using.
        """
        if self._shared_session is not None:
            self._shared_session.mount(prefix, adapter)
        else:
            self._sessions.mount(prefix, adapter)

    def close(self) -> None:
        """Close every session this transport made (every thread's); a session passed in is left open."""
        self._sessions.close()

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, test_mode={self.test_mode!r})"

    # -- requests ----------------------------------------------------------

    def _call_headers(self, body: Optional[bytes], idempotency_key: Optional[str],
                      test_mode: Optional[bool] = None) -> Dict[str, str]:
        """The headers that change per call (the session's lease holds the rest)."""
        headers = {"X-Signature": sign_body(self._webhook_secret, body or b"{}")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.test_mode if test_mode is None else test_mode:
            headers["X-Test-Mode"] = "true"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    @staticmethod
    def _query(params: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
        if not params:
            return None
        query: Dict[str, Any] = {}
        for key, value in params.items():
            if value is None:
                continue
            query[key] = str(value) if isinstance(value, bool) else value
        return query

    def _backoff(self, retry_no: int) -> float:
        return self.backoff_factor * (2 ** (retry_no - 1)) * (1 + self._jitter())

    def _prepared_url(self, url: str, query: Optional[Dict[str, Any]]) -> str:
        """``url`` (with ``query``) as ``requests`` would send it; parameterless ones are remembered."""
        known = self._urls.get(url) if query is None else None
        if known is None:
            import requests

            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, query)
            known = prepared.url or url
            if query is None and len(self._urls) < _MAX_REMEMBERED_URLS:
                self._urls[url] = known
        return known

    def _send(self, method: str, url: str, body: Optional[bytes], call_headers: Dict[str, str],
              query: Optional[Dict[str, Any]]) -> requests.Response:
        """One attempt; the answer is read whole before this returns (inside the attempt's deadline)."""
        timeout = (self.timeout, self.timeout)
        if self._shared_session is not None:
            return self._shared_session.request(method, url, data=body, params=query,
                                                headers={**self._user_headers(), **call_headers},
                                                timeout=timeout, allow_redirects=False)
        # Our own sessions skip Session.request: the environment was read once per session,
        # there is no auth, no params and no hooks to merge, and the URL is prepared once.
        import requests
        from requests.cookies import RequestsCookieJar, merge_cookies

        lease = self._sessions.lease()
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = self._prepared_url(url, query)
        headers = lease.headers.copy()
        headers.update(call_headers)
        if body is not None:
            headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared.headers = headers
        prepared.body = body
        prepared.prepare_cookies(merge_cookies(RequestsCookieJar(), lease.session.cookies))
        return lease.session.send(prepared, timeout=timeout, allow_redirects=False)

    def _user_headers(self) -> Dict[str, str]:
        return {"Accept": "application/json", "User-Agent": self.user_agent, "X-API-Key": self._api_key}

    def request(
        self,
        method: str,
        path: str,
        *,
        payload: Optional[Mapping[str, Any]] = None,
        params: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        body: Optional[bytes] = None,
        test_mode: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Send one API call (with retries); return HAVN's JSON object.

        ``payload`` is serialised with :func:`~flask_havn.signing.canonical_json`;
        ``body`` instead passes bytes the caller already made that way (sent
        and signed as they are), e.g. to serialise a large batch only once.
        ``test_mode`` overrides the transport's own for this call (``None``: the
        transport's).
        A 2xx whose body is empty or not JSON gives ``{"success": True}``; a 2xx
        whose JSON is not an object gives ``{"success": True, "data": <it>}``.
        Raises :class:`HAVNNetworkError` or a :class:`HAVNAPIError` subclass.
        Each attempt is bounded by ``timeout`` in total; the whole call by
        :meth:`max_call_seconds`.
        """
        import requests

        from ._deadline import attempt_deadline, deadline_passed

        method = method.upper()
        url = self.base_url + "/" + path.lstrip("/")
        if body is not None:
            if payload is not None or not isinstance(body, bytes):
                raise HAVNValidationError("body", "must be bytes of canonical JSON, and only without payload")
        elif method not in ("GET", "HEAD", "DELETE") or payload is not None:
            try:
                body = canonical_json(payload if type(payload) is dict else dict(payload or {}))
            except (TypeError, ValueError) as exc:
                raise HAVNValidationError("payload", f"is not JSON-serialisable ({exc}); pass only strings, "
                                          "numbers, booleans, null, lists and dicts") from None
        if idempotency_key is not None and not _is_header_token(idempotency_key):
            raise HAVNValidationError("idempotency_key", "must be 1 to 255 printable ASCII characters")
        if method == "POST" and idempotency_key is None:
            idempotency_key = uuid.uuid4().hex
        call_headers = self._call_headers(body, idempotency_key, test_mode)
        query = self._query(params)
        secrets = (self._api_key, self._webhook_secret)

        waited = 0.0
        retry_no = 0
        while True:
            attempt = retry_no + 1
            resp: Optional[requests.Response] = None
            failure: Optional[BaseException] = None
            timed_out = False
            with attempt_deadline(self.timeout) as deadline:
                try:
                    resp = self._send(method, url, body, call_headers, query)
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        socket.timeout) as exc:
                    # A connection dropped mid-answer is retried like any lost answer: the
                    # Idempotency-Key makes the POST safe to repeat.
                    failure = exc
                    timed_out = isinstance(exc, (requests.Timeout, socket.timeout)) or deadline_passed(deadline)
                except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema) as exc:
                    raise HAVNConfigError(f"HAVN_BASE_URL {self.base_url!r} is not a usable URL "
                                          f"({type(exc).__name__}); fix it") from None
                except requests.RequestException as exc:
                    raise HAVNNetworkError(_redact(
                        f"calling HAVN ({method} {path}) failed: {type(exc).__name__}: {exc}. "
                        "Check HAVN_BASE_URL and the network.", secrets)) from None

            if resp is not None and resp.status_code < 400:
                logger.debug("HAVN %s %s -> %s (attempt %d)", method, path, resp.status_code, attempt)
                if resp.status_code >= 300:
                    raise HAVNAPIError(
                        f"HAVN answered a redirect ({resp.status_code}) on {method} {path}; "
                        "check HAVN_BASE_URL (scheme, host and no path).", status_code=resp.status_code)
                return self._success_body(resp)

            status = resp.status_code if resp is not None else None
            retryable = failure is not None or status in RETRY_STATUSES
            wait: Optional[float] = None
            if retryable and retry_no < self.max_retries:
                wait = self._backoff(retry_no + 1)
                if resp is not None:
                    hint = server_wait_hint(resp, self._clock())
                    if hint is not None:
                        wait = max(wait, hint)
                if waited + wait > self.max_total_wait:
                    logger.debug("HAVN %s %s: wait %.3fs would exceed max_total_wait %.3fs; giving up",
                                 method, path, wait, self.max_total_wait)
                    wait = None
            logger.debug(
                "HAVN %s %s -> %s (attempt %d)%s", method, path,
                status if status is not None else ("timeout" if timed_out else type(failure).__name__), attempt,
                f"; retrying in {wait:.3f}s" if wait is not None else "",
            )
            if wait is None:
                if resp is not None:
                    raise error_from_response(resp, clock=self._clock, redact=secrets)
                raise self._network_error(method, path, timed_out, attempt)
            self._sleep(wait)
            waited += wait
            retry_no += 1

    @staticmethod
    def _success_body(resp: requests.Response) -> Dict[str, Any]:
        parsed = _parse_json(resp)
        if parsed is None:
            return {"success": True}
        if not isinstance(parsed, dict):
            return {"success": True, "data": parsed}
        return parsed

    def _network_error(self, method: str, path: str, timed_out: bool, attempts: int) -> HAVNNetworkError:
        what = (f"HAVN did not answer within {self.timeout:g}s" if timed_out
                else f"could not connect to HAVN at {self.base_url}")
        advice = ("raise HAVN_TIMEOUT (the limit for one whole attempt) or check HAVN's status" if timed_out
                  else "check HAVN_BASE_URL and the network (DNS, firewall, proxy)")
        message = f"{what} ({method} {path}, {attempts} attempt{'s' if attempts != 1 else ''}); {advice}."
        return HAVNNetworkError(_redact(message, (self._api_key, self._webhook_secret)))
