"""Run the sandbox over real HTTP: in a background thread (tests) or blocking (the CLI).

:class:`SandboxServer` serves an app with werkzeug's threaded server on an
ephemeral loopback port and keeps every exception raised while handling a
request in :attr:`SandboxServer.errors`; :meth:`SandboxServer.stop` re-raises
them, so a crash inside the sandbox fails the test instead of hiding in a log::

    with SandboxServer(config={"HAVN_SANDBOX_SEED": 1}) as server:
        requests.get(server.url + "/_sandbox/state")
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .. import config as havn_config
from .settings import hide_password

__all__ = ["SandboxServer", "SandboxServerError", "run", "banner", "local_url", "standalone_config"]

log = logging.getLogger("flask_havn.sandbox")


class SandboxServerError(RuntimeError):
    """One or more requests crashed inside the sandbox; ``errors`` holds the exceptions."""

    def __init__(self, errors: List[BaseException]) -> None:
        first = errors[0]
        super().__init__(
            f"{len(errors)} request(s) crashed inside the HAVN sandbox; first: "
            f"{type(first).__name__}: {first}. Fix the cause (see the chained traceback)."
        )
        self.errors = errors


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, logging each request at DEBUG instead of printing it.

    Nagle's algorithm is off: the handler writes the status line and headers,
    then the body, in separate sends, and with Nagle on the body waits for the
    client's delayed ACK — about 40 ms added to every answer on Linux.
    """

    disable_nagle_algorithm = True

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("%s %s -> %s", self.command, getattr(self, "path", "?"), code)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        # A dropped connection (client gone, or the "drop" fault) ends this connection:
        # never try to parse leftover request bytes as a next request.
        self.close_connection = True


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server that hands low-level handler errors to a callback."""

    on_error: Optional[Callable[[BaseException], None]] = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and self.on_error is not None and not isinstance(exc, ConnectionError):
            self.on_error(exc)


def _bind(host: str, port: int, app: Any) -> _Server:
    """A listening server; werkzeug exits the process when binding fails, we raise instead."""
    try:
        return _Server(host, port, app, handler=_QuietHandler)
    except SystemExit:
        raise OSError(f"cannot listen on {host}:{port} (port in use or address unavailable); "
                      "pick another port, or port 0 for any free one") from None


class SandboxServer:
    """A sandbox (or any WSGI app) on ``http://127.0.0.1:<ephemeral port>``, in a thread.

    ``app`` defaults to ``create_app(config)``. :meth:`stop` shuts the server
    down, closes the sandbox's state and raises :class:`SandboxServerError` if
    any request crashed.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        config: Optional[Mapping[str, Any]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if app is None:
            from .app import create_app

            app = create_app(config)
        elif config is not None:
            raise ValueError("pass either app or config to SandboxServer, not both")
        self.app = app
        self.host = host
        self.port = port
        self.errors: List[BaseException] = []
        self._errors_lock = threading.Lock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._signal_connected = False

    def __repr__(self) -> str:
        return f"<SandboxServer {self.url if self._server else 'stopped'}>"

    # -- lifecycle -----------------------------------------------------------

    @property
    def state(self) -> Any:
        """The app's ``SandboxState`` (``None`` for an app that is not a sandbox)."""
        extensions = getattr(self.app, "extensions", None)
        return extensions.get("havn_sandbox") if isinstance(extensions, dict) else None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("the SandboxServer is not running; call start() first")
        return local_url(self.host, self._server.port)

    def start(self) -> "SandboxServer":
        """Bind the port and serve in a daemon thread; return once it accepts requests."""
        if self._server is not None:
            raise RuntimeError("this SandboxServer is already running")
        server = _bind(self.host, self.port, self._trap(self.app))
        server.on_error = self._record
        self._connect_signal()
        ready = threading.Event()

        def serve() -> None:
            ready.set()
            server.serve_forever(poll_interval=0.05)

        self._server = server
        if self.state is not None:
            self.state.serve_at(self.url)  # before the first request: links use the real port
        self._thread = threading.Thread(target=serve, name="havn-sandbox-server", daemon=True)
        self._thread.start()
        ready.wait()
        log.info("HAVN sandbox listening on %s", self.url)
        return self

    def stop(self, *, raise_errors: bool = True) -> None:
        """Shut down, close the socket, join the thread, close the state; re-raise crashes."""
        state = self.state
        faults = getattr(state, "faults", None)
        if faults is not None:
            faults.close()  # wake stalled "hang" requests so their threads end
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        self._disconnect_signal()
        if state is not None:
            state.close()
        if raise_errors:
            self.raise_errors()

    def reset(self) -> None:
        """Reset the sandbox's state (``POST /_sandbox/reset`` without HTTP)."""
        state = self.state
        if state is None:
            raise RuntimeError("this app is not a HAVN sandbox app; nothing to reset")
        state.reset()

    def wait_for_events(self, timeout: float = 5.0) -> None:
        """Deliver the sandbox's queued events now and wait for them (see ``SandboxState.wait_for_events``)."""
        state = self.state
        if state is None:
            raise RuntimeError("this app is not a HAVN sandbox app; it has no events")
        state.wait_for_events(timeout)

    def raise_errors(self) -> None:
        """Raise :class:`SandboxServerError` for crashes recorded so far, and forget them."""
        with self._errors_lock:
            errors, self.errors = self.errors, []
        if errors:
            raise SandboxServerError(errors) from errors[0]

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop(raise_errors=exc_info[0] is None)

    # -- error capture -------------------------------------------------------

    def _record(self, exc: BaseException) -> None:
        with self._errors_lock:
            self.errors.append(exc)
        log.error("HAVN sandbox request crashed: %s: %s", type(exc).__name__, exc)

    def _on_flask_exception(self, sender: Any, exception: BaseException, **extra: Any) -> None:
        self._record(exception)

    def _connect_signal(self) -> None:
        if hasattr(self.app, "extensions") and not self._signal_connected:
            from flask import got_request_exception

            got_request_exception.connect(self._on_flask_exception, self.app, weak=False)
            self._signal_connected = True

    def _disconnect_signal(self) -> None:
        if self._signal_connected:
            from flask import got_request_exception

            got_request_exception.disconnect(self._on_flask_exception, self.app)
            self._signal_connected = False

    def _trap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """Wrap ``app`` so exceptions escaping it are recorded (dropped connections are not errors)."""

        def trapped(environ: Any, start_response: Any) -> Iterable[bytes]:
            try:
                return app(environ, start_response)
            except ConnectionError:
                raise
            except Exception as exc:
                self._record(exc)
                raise

        return trapped


def local_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` to reach a server bound to ``host`` from this machine (all interfaces: 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def standalone_config(
    *,
    database: Optional[str] = None,
    webhook_url: Optional[str] = None,
    seed: Optional[int] = None,
    public_url: Optional[str] = None,
    allowed_hosts: Iterable[str] = (),
) -> Dict[str, Any]:
    """The ``HAVN_SANDBOX_*`` keys for the command-line options given (both commands share it)."""
    config: Dict[str, Any] = {}
    if database:
        config["HAVN_SANDBOX_DATABASE_URI"] = database
    if webhook_url:
        config["HAVN_SANDBOX_WEBHOOK_URL"] = webhook_url
    if seed is not None:
        config["HAVN_SANDBOX_SEED"] = seed
    if public_url:
        config["HAVN_SANDBOX_PUBLIC_URL"] = public_url
    if allowed_hosts:
        config["HAVN_SANDBOX_ALLOWED_HOSTS"] = list(allowed_hosts)
    return config


def banner(url: str, settings: Any, *, public_url: Optional[str] = None, generated: bool = False) -> str:
    """What :func:`run` prints: where it listens and the lines to ``export`` for the app.

    The credentials are shown when they are the public development ones or
    were ``generated`` for this run; a user-supplied key or secret never is.
    """
    dev = (settings.api_key, settings.webhook_secret) == (havn_config.SANDBOX_API_KEY,
                                                           havn_config.SANDBOX_WEBHOOK_SECRET)
    key = settings.api_key if dev or generated else "(your HAVN_API_KEY)"
    secret = settings.webhook_secret if dev or generated else "(your HAVN_WEBHOOK_SECRET)"
    webhooks = hide_password(settings.webhook_url) if settings.webhook_url else "(none)"
    return "\n".join([
        f"HAVN sandbox on {url}  (Ctrl-C to stop); point your app at it:",
        f"  export HAVN_BASE_URL={public_url or url}",
        f"  export HAVN_API_KEY={key}",
        f"  export HAVN_WEBHOOK_SECRET={secret}",
        f"  database: {settings.shown_database_uri}   webhooks to: {webhooks}",
    ])


def run(host: str = "127.0.0.1", port: int = 8765, config: Optional[Mapping[str, Any]] = None, *,
        generated_credentials: bool = False) -> None:
    """Serve a sandbox until Ctrl-C, printing its URL and the credentials to use.

    ``generated_credentials``: the key and secret in ``config`` were made up for
    this run, so printing them is safe (see :func:`banner`).
    """
    from .app import create_app
    from .state import get_state

    app = create_app(config)
    state = get_state(app)
    try:
        server = _bind(host, port, app)
    except OSError:
        state.close()
        raise
    url = local_url(host, server.port)
    state.serve_at(url)
    print(banner(url, state.settings, public_url=state.public_url, generated=generated_credentials), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()
