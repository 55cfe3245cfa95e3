"""Direct requests (no proxy): shared keep-alive connections through the lean HTTP/1.1 client (`http1.py`), a
minimal response, and the registry of every socket so that a stop can shut them.

`HttpClient` sends streamed GETs (the engine's pieces and small files, metadata read by read_body) and HEADs through
here when no proxy applies; through a proxy, requests does it all. Redirects, tokens and retries stay in
`HttpClient`; this only sends one request.

`SocketRegistry` knows every connection the pools (these and requests' own) opened, so that a stop (Ctrl-C, a full
disk) can shut their sockets: a thread blocked in a read, of a body or of headers a server holds back, wakes at once
instead of after the read timeout.
"""

from __future__ import annotations

import socket
import threading
import weakref

from .http1 import LeanPool


class DirectResponse:
    """A lean (or urllib3) response with the parts of `requests.Response` hfget uses (status_code, headers, url, reason,
    raw, close, a context manager)."""

    def __init__(self, raw, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive
        self.reason = raw.reason

    def close(self) -> None:
        # A body read to its end has already handed its connection back to the pool; a connection still held
        # has unread bytes on it and cannot be reused.
        if getattr(self.raw, "_connection", None) is not None:
            self.raw.close()
        self.raw.release_conn()

    def __enter__(self) -> DirectResponse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SocketRegistry:
    """The connections opened by the pools it tracks; `interrupt()` shuts every one of their sockets, and those of
    any connection opened after it."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._classes: dict[type, type] = {}
        self.interrupted = False

    def track(self, manager) -> None:
        """Make a urllib3 PoolManager (or ProxyManager, SOCKSProxyManager) register each connection it opens."""
        manager.pool_classes_by_scheme = {
            scheme: self._tracked(pool_class) for scheme, pool_class in manager.pool_classes_by_scheme.items()
        }

    def _tracked(self, pool_class: type) -> type:
        with self._lock:
            tracked = self._classes.get(pool_class)
            if tracked is None:
                registry = self

                class TrackedConnection(pool_class.ConnectionCls):  # type: ignore[name-defined, misc]
                    def connect(self) -> None:
                        super().connect()
                        registry._add(self)

                tracked = type(pool_class.__name__, (pool_class,), {"ConnectionCls": TrackedConnection})
                self._classes[pool_class] = tracked
            return tracked

    def _add(self, connection) -> None:
        with self._lock:
            self._connections.add(connection)
            late = self.interrupted
        if late:  # opened after the stop, by a request already on its way: it must not start waiting now
            _shut(connection)

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


def _shut(connection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class DirectPool:
    """Thread-safe keep-alive connections (one set per origin) with the same TLS verification as the sessions, sent
    through the lean client (`LeanPool`, below). At most `max_per_host` connections to one origin exist at once: a
    request that would need another waits until one is handed back."""

    def __init__(self, verify: bool | str, user_agent: str, sockets: SocketRegistry, max_per_host: int) -> None:
        self.user_agent = user_agent
        self._pool = LeanPool(verify, sockets, max_per_host)

    def send(self, method: str, url: str, headers: dict, timeout: tuple[float, float]) -> DirectResponse:
        # The engine never waits for a free connection (it gives no origin more units than the cap); anything else
        # waits at most this long for one of the host's connections to come back, then fails as a timeout would.
        raw = self._pool.request(method, url, {"User-Agent": self.user_agent, **headers}, timeout,
                                 pool_timeout=timeout[0] + timeout[1])
        return DirectResponse(raw, url)

    def clear(self) -> None:
        self._pool.clear()
