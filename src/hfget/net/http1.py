"""A lean HTTP/1.1 client: keep-alive connections per origin, capped per host, for the direct requests.

Why not requests or urllib3 here: a small file costs two requests (the hub's 307, then the bytes). requests' session
merging, cookie jars and hooks cost about half a millisecond of CPU per request; urllib3 alone still spent most of
~0.5 ms per request in layers hfget does not use (URL re-parsing, pool keys, Timeout objects, http.client's header
parsing through the `email` package): on 3000 small files from a near server, half of the interpreter's time
(py-spy, issue #14). `LeanPool` sends the request line and headers in one `sendall`, reads the status line and
headers with a buffered `readline`, and streams the body (Content-Length, chunked, or up to the close; gzip and
deflate decoded). Failures are raised as urllib3's exception types with the socket error as their cause, so
`net_errors` classifies every path alike. The sockets it opens are added to the caller's `SocketRegistry`
(http_direct.py), which a stop shuts.
"""

from __future__ import annotations

import select
import socket
import threading
import zlib
from urllib.parse import quote, urlsplit

MAX_HEADERS = 100
MAX_LINE = 65536
_SAFE_PATH = "/%:@!$&'()*+,;=~-._?"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Headers(dict):
    """Response headers, case-insensitive (stored lower-case); repeated ones joined with ", " as urllib3 does."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def get(self, name: str, default=None):
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class LeanConnection:
    """One socket to one origin, with a buffered reader; `sock` is what the socket registry shuts on a stop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=65536)

    def dropped(self) -> bool:
        """A kept-alive connection the server closed (or that has stray bytes) while it was idle."""
        try:
            if hasattr(select, "poll"):  # select() fails on descriptors above 1023 (a process with many files open)
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([self.sock], [], [], 0)[0])  # (Windows: no poll, and no such limit)
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


class LeanResponse:
    """The parts of a urllib3 response hfget uses: status, reason, headers, read1, read, length_remaining, tell,
    close, release_conn and `_connection` (set while the connection still carries unread body bytes)."""

    def __init__(self, pool: LeanPool, key, conn: LeanConnection, status: int, reason: str, headers: Headers,
                 method: str, keep: bool) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self._pool, self._key, self._connection = pool, key, conn
        self._keep = keep
        self._read = 0
        self._chunk_left: int | None = None  # chunked: bytes left in the current chunk (None: read a size line)
        self._decoder = _decoder(headers.get("Content-Encoding"))
        self.chunked = False
        self.length_remaining: int | None = None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.length_remaining = 0
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            self.chunked = True
        else:
            length = headers.get("Content-Length")
            if length is not None and length.strip().isdigit():
                self.length_remaining = int(length)
            else:
                self._keep = False  # the body ends when the server closes the connection
        if self.length_remaining == 0:
            self._finish()

    def tell(self) -> int:
        return self._read

    def read1(self, amt: int = 65536, decode_content: bool = True) -> bytes:
        while True:
            data = self._raw1(amt)
            if not data or not (decode_content and self._decoder):
                return data
            out = self._decoder.decompress(data)
            if out:
                return out

    def read(self, amt: int, decode_content: bool = False) -> bytes:
        out = bytearray()
        while len(out) < amt:
            data = self.read1(amt - len(out), decode_content)
            if not data:
                break
            out += data
        return bytes(out)

    def _raw1(self, amt: int) -> bytes:
        conn = self._connection
        if conn is None:
            return b""
        if self.chunked:
            return self._chunk1(conn, amt)
        if self.length_remaining is not None:
            amt = min(amt, self.length_remaining)
        data = conn.rfile.read1(amt) if amt > 0 else b""
        if not data:  # the end of a close-delimited body, or a server that sent less than it promised
            if self.length_remaining is None:
                self._finish()
            else:
                self.close()
            return b""
        self._read += len(data)
        if self.length_remaining is not None:
            self.length_remaining -= len(data)
            if not self.length_remaining:
                self._finish()
        return data

    def _chunk1(self, conn: LeanConnection, amt: int) -> bytes:
        import urllib3.exceptions as u3

        if self._chunk_left is None:
            line = conn.rfile.readline(MAX_LINE)
            size = line.split(b";", 1)[0].strip()
            try:
                self._chunk_left = int(size, 16)
            except ValueError:
                self.close()
                raise u3.InvalidChunkLength(self, line) from None
            if self._chunk_left == 0:  # the last chunk: skip trailers up to the blank line
                while conn.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                self._finish()
                return b""
        data = conn.rfile.read1(min(amt, self._chunk_left))
        if not data:
            self.close()
            raise u3.IncompleteRead(self._read, self._chunk_left)
        self._read += len(data)
        self._chunk_left -= len(data)
        if not self._chunk_left:
            conn.rfile.readline(MAX_LINE)  # the CRLF after the chunk
            self._chunk_left = None
        return data

    def _finish(self) -> None:
        """The body was read to its end: the connection goes back to the pool (or is closed)."""
        conn, self._connection = self._connection, None
        if conn is not None:
            self._pool.put(self._key, conn, self._keep)

    def close(self) -> None:
        """Unread body bytes are on the connection: it cannot serve another request."""
        conn, self._connection = self._connection, None
        if conn is not None:
            self._pool.put(self._key, conn, False)

    def release_conn(self) -> None:
        self.close()


class LeanPool:
    """Keep-alive connections per origin, at most `max_per_host` open to one origin at once (a request that would
    need another waits up to its pool timeout, then fails as urllib3's EmptyPoolError). Thread-safe."""

    def __init__(self, verify: bool | str, sockets, max_per_host: int) -> None:
        self.verify = verify
        self.sockets = sockets
        self.max_per_host = max_per_host
        self._cond = threading.Condition()
        self._idle: dict[tuple, list[LeanConnection]] = {}
        self._open: dict[tuple, int] = {}
        self._tls = None

    def request(self, method: str, url: str, headers: dict, timeout: tuple[float, float],
                pool_timeout: float) -> LeanResponse:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
        key = (scheme, host, port)
        head = _request_head(method, parts, headers)
        for fresh in (False, True):
            conn, reused = self._get(key, timeout, pool_timeout, fresh)
            try:
                conn.sock.settimeout(timeout[1])
                conn.sock.sendall(head)
                return self._response(key, conn, method)
            except _Stale:
                self.put(key, conn, False)
                if not reused:
                    raise _disconnected(f"{host} closed the connection without an answer") from None
            except OSError as exc:
                self.put(key, conn, False)
                if reused and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                    continue  # a kept-alive connection the server had just closed: once more on a new one
                raise _as_transport_error(exc, url, connect=False) from exc
            except BaseException:
                self.put(key, conn, False)
                raise
        raise AssertionError("unreachable")

    def _response(self, key, conn: LeanConnection, method: str) -> LeanResponse:
        import urllib3.exceptions as u3

        while True:
            line = conn.rfile.readline(MAX_LINE + 1)
            if not line:
                raise _Stale
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/") or not code.isdigit():
                raise u3.ProtocolError(f"not an HTTP response: {line[:40]!r}")
            headers = _read_headers(conn)
            status = int(code)
            if not (100 <= status < 200) or status == 101:
                break
        connection = headers.get("Connection", "").lower()
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        return LeanResponse(self, key, conn, status, reason, headers, method, keep)

    def _get(self, key, timeout, pool_timeout: float, fresh: bool) -> tuple[LeanConnection, bool]:
        import urllib3.exceptions as u3

        with self._cond:
            while True:
                idle = self._idle.get(key)
                while idle and not fresh:
                    conn = idle.pop()
                    if not conn.dropped():
                        return conn, True
                    self._open[key] -= 1
                    conn.close()
                if self._open.get(key, 0) < self.max_per_host:
                    self._open[key] = self._open.get(key, 0) + 1
                    break
                if fresh and idle:  # retrying on a new connection: make room by closing an idle one
                    idle.pop().close()
                    continue
                if not self._cond.wait(pool_timeout):
                    raise u3.EmptyPoolError(None, f"no free connection to {key[1]} within {pool_timeout:.0f} s")
        try:
            return self._connect(key, timeout), False
        except BaseException:
            self._forget(key)
            raise

    def _connect(self, key, timeout) -> LeanConnection:
        scheme, host, port = key
        try:
            sock = socket.create_connection((host, port), timeout=timeout[0])
        except OSError as exc:
            raise _as_transport_error(exc, f"{scheme}://{host}:{port}", connect=True) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=host)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                raise _as_transport_error(exc, f"{scheme}://{host}:{port}", connect=True) from exc
            raise
        conn = LeanConnection(sock)
        self.sockets._add(conn)
        return conn

    def _context(self):
        with self._cond:
            if self._tls is None:
                import ssl

                if self.verify is False:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                else:
                    import certifi  # the bundle requests verifies with, so both paths trust the same CAs

                    bundle = self.verify if isinstance(self.verify, str) else certifi.where()
                    context = ssl.create_default_context(cafile=bundle)
                self._tls = context
            return self._tls

    def put(self, key, conn: LeanConnection, keep: bool) -> None:
        with self._cond:
            if keep and not self.sockets.interrupted:
                self._idle.setdefault(key, []).append(conn)
                self._cond.notify()
                return
            self._open[key] -= 1
            self._cond.notify()
        conn.close()

    def _forget(self, key) -> None:
        with self._cond:
            self._open[key] -= 1
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, {}
            for key, conns in idle.items():
                self._open[key] -= len(conns)
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _Stale(Exception):
    """The connection closed before a status line: a kept-alive connection the server had dropped."""


def _disconnected(message: str):
    import urllib3.exceptions as u3

    return u3.ProtocolError(message, ConnectionResetError(message))


def _request_head(method: str, parts, headers: dict) -> bytes:
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not path.isascii() or " " in path:
        path = quote(path, safe=_SAFE_PATH)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
    names = {name.lower() for name in headers}
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    for name, value in headers.items():
        value = str(value)
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"Invalid header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_headers(conn: LeanConnection) -> Headers:
    import urllib3.exceptions as u3

    headers = Headers()
    for _ in range(MAX_HEADERS + 1):
        line = conn.rfile.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise u3.ProtocolError("the connection closed in the middle of the response's headers",
                                   ConnectionResetError("closed in the headers"))
        if len(line) > MAX_LINE:
            raise u3.ProtocolError("a response header line is too long")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            continue  # (an obsolete folded line or garbage: ignored, as http.client keeps it out of lookups)
        name, value = name.strip().lower(), value.strip()
        old = dict.get(headers, name)
        dict.__setitem__(headers, name, value if old is None else f"{old}, {value}")
    raise u3.ProtocolError(f"the response has more than {MAX_HEADERS} headers")


def _decoder(encoding: str | None):
    encoding = (encoding or "").strip().lower()
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def _as_transport_error(exc: OSError, url: str, *, connect: bool):
    """The socket error as the urllib3 exception that would have carried it (net_errors reads both)."""
    import ssl

    import urllib3.exceptions as u3

    if isinstance(exc, ssl.SSLError):
        return u3.SSLError(exc)
    if isinstance(exc, socket.gaierror):
        return u3.NameResolutionError(urlsplit(url).hostname or "", None, exc)
    if isinstance(exc, TimeoutError):
        if connect:
            return u3.ConnectTimeoutError(None, f"connecting to {urlsplit(url).hostname} timed out")
        return u3.ReadTimeoutError(None, url, "read timed out")
    if connect:
        return u3.NewConnectionError(None, f"failed to connect: {exc!r}")
    return u3.ProtocolError("the connection broke", exc)
