"""A total deadline for one HTTP attempt, enforced on every socket operation. No Flask.

``requests``' timeout bounds each socket read, not the call: a server that
trickles one byte just inside the read timeout can hold a call for ever. Here
the calling thread sets a monotonic deadline (:func:`attempt_deadline`) and
every send and receive on a connection made by :class:`DeadlineAdapter`
first shrinks the socket's timeout to the time left, or raises
``socket.timeout`` once none is left: connect, request, status line, headers
and body together stay within the budget.

How: the adapter's connection pools make connections that, once connected,
re-class their socket (a plain ``socket.socket`` or an ``ssl.SSLSocket``) to
a subclass adding only that check. Sockets of any other type (TLS inside a
TLS proxy tunnel, pyOpenSSL) keep the per-read timeout. DNS resolution is
the operating system's and is not bounded here.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Type

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter", "attempt_deadline", "deadline_passed"]

_state = threading.local()


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    """Bound the calling thread's socket operations to ``seconds`` from now; yields the monotonic deadline."""
    previous: Optional[float] = getattr(_state, "deadline", None)
    deadline = time.monotonic() + seconds
    _state.deadline = deadline if previous is None else min(previous, deadline)
    try:
        yield _state.deadline
    finally:
        _state.deadline = previous


def deadline_passed(deadline: float) -> bool:
    """Whether the monotonic ``deadline`` is behind us (a failure then counts as a timeout)."""
    return time.monotonic() >= deadline


class _DeadlineMixin:
    """Shrinks the socket timeout to the thread's remaining budget before each send and receive."""

    __slots__ = ()

    def _within_deadline(self) -> None:
        deadline: Optional[float] = getattr(_state, "deadline", None)
        if deadline is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("the HAVN call's deadline passed")
        current = self.gettimeout()  # type: ignore[attr-defined]
        if current is None or current > remaining:
            self.settimeout(remaining)  # type: ignore[attr-defined]

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._within_deadline()
        return super().recv(*args, **kwargs)  # type: ignore[misc]

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._within_deadline()
        return super().recv_into(*args, **kwargs)  # type: ignore[misc]

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._within_deadline()
        return super().send(*args, **kwargs)  # type: ignore[misc]

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._within_deadline()
        super().sendall(*args, **kwargs)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    __slots__ = ()


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    __slots__ = ()


_DEADLINE_CLASSES: Dict[type, type] = {socket.socket: _DeadlineSocket, ssl.SSLSocket: _DeadlineSSLSocket}


def _arm(sock: Any) -> None:
    """Give a freshly connected socket the deadline check (same object, same state: a subclass only adds methods)."""
    deadline_class = _DEADLINE_CLASSES.get(type(sock))
    if deadline_class is not None:
        sock.__class__ = deadline_class


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection  # type: ignore[assignment]


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection  # type: ignore[assignment]


_POOLS: Dict[str, Type[HTTPConnectionPool]] = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """``requests``' HTTP(S) adapter whose connections honour :func:`attempt_deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if getattr(manager, "pool_classes_by_scheme", None) is not None and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
