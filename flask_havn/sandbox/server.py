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
import re
import threading
from typing import Any, Callable, Iterable, List, Mapping, Optional

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .. import config as havn_config

__all__ = ["SandboxServer", "SandboxServerError", "run"]

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
    """werkzeug's handler, logging each request at DEBUG instead of printing it."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("%s %s -> %s", self.command, getattr(self, "path", "?"), code)


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server that hands low-level handler errors to a callback."""

    on_error: Optional[Callable[[BaseException], None]] = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and self.on_error is not None and not isinstance(exc, ConnectionError):
            self.on_error(exc)


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
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.port}"

    def start(self) -> "SandboxServer":
        """Bind the port and serve in a daemon thread; return once it accepts requests."""
        if self._server is not None:
            raise RuntimeError("this SandboxServer is already running")
        server = _Server(self.host, self.port, self._trap(self.app), handler=_QuietHandler)
        server.on_error = self._record
        self._connect_signal()
        ready = threading.Event()

        def serve() -> None:
            ready.set()
            server.serve_forever(poll_interval=0.05)

        self._server = server
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


def run(host: str = "127.0.0.1", port: int = 8765, config: Optional[Mapping[str, Any]] = None) -> None:
    """Serve a sandbox until Ctrl-C, printing its URL and the credentials to use."""
    from .app import create_app

    app = create_app(config)
    state = app.extensions["havn_sandbox"]
    server = _Server(host, port, app, handler=_QuietHandler)
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    given = dict(config or {})
    key = "(your HAVN_API_KEY)" if given.get("HAVN_API_KEY") else havn_config.SANDBOX_API_KEY
    secret = ("(your HAVN_WEBHOOK_SECRET)" if given.get("HAVN_WEBHOOK_SECRET")
              else havn_config.SANDBOX_WEBHOOK_SECRET)
    print(f"HAVN sandbox on http://{shown_host}:{server.port}  (Ctrl-C to stop)")
    print(f"  HAVN_BASE_URL=http://{shown_host}:{server.port}")
    print(f"  HAVN_API_KEY={key}")
    print(f"  HAVN_WEBHOOK_SECRET={secret}")
    database = re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", state.settings.database_uri)
    print(f"  database: {database}   webhooks to: {state.settings.webhook_url or '(none)'}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()
