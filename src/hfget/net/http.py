"""HTTP for hfget: one client that knows timeouts, retries, redirects, proxies and where a token may go.

Everything that talks to a server goes through `HttpClient`, so the security rules (DESIGN §7) live in one place:
the `Authorization` header is attached per request, and only when the request's origin is the origin the token was
granted for; a redirect to any other origin (a CDN, a hostile mirror) never carries it. Network failures are turned
into the hfget error of the right kind (DNS, connect, TLS, timeout, proxy) with a hint that names the fix.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

from .. import __version__
from ..errors import (
    DnsError,
    NetworkError,
    NetworkTimeout,
    ProtocolError,
    ProxyError,
    ServerError,
    TlsError,
    UnreachableRedirect,
)
from .http_direct import DirectPool, SocketRegistry
from .net_errors import classify_exception, proxy_auth_error, transport_errors
from .proxy import NO_PROXY_CONFIG, ProxyConfig, basic_auth_header
from .urls import Origin, host_label, origin_of

REDIRECT_CODES = (301, 302, 303, 307, 308)
RETRY_STATUS = (429, 500, 502, 503, 504)
@dataclass(frozen=True)
class TokenGrant:
    """A token and the single origin it may be sent to. No grant, no header."""

    token: str
    origin: Origin

    def applies_to(self, url: str) -> bool:
        return origin_of(url) == self.origin


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with full jitter, or the server's Retry-After when it gave one."""
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Cancelled(Exception):
    """The client was interrupted (`HttpClient.interrupt`): a stop, not a failure of the server."""


DEFAULT_MAX_PER_HOST = 64
REDIRECT_BODY_LIMIT = 64 * 1024  # a redirect's body (an HTML stub) read to keep its connection: at most this much


class HttpClient:
    """Thread-safe. Connections are kept alive and shared by every thread, one pool per origin, never more than
    `max_per_host` connections open to one host at once (a request waits for a free one): CDNs throttle clients
    that open too many (huggingface_hub #4893), and thousands of small files then reuse a few warm connections
    instead of paying a TCP (and TLS) handshake each. Each thread gets its own `requests.Session` (its own cookie
    jar) over one shared adapter, so proxied requests share the same pools too."""

    def __init__(
        self,
        *,
        proxy: ProxyConfig | None = None,
        verify: bool | str = True,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_per_host: int = DEFAULT_MAX_PER_HOST,
        user_agent: str | None = None,
    ) -> None:
        self.proxy = proxy or NO_PROXY_CONFIG
        self.verify = verify
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry or RetryPolicy()
        self.max_per_host = max(1, max_per_host)
        self.user_agent = user_agent or f"hfget/{__version__}"
        self._local = threading.local()
        self._sessions: list = []
        self._adapter = None  # the sessions' shared pools (created with the first session)
        self._sockets = SocketRegistry()  # every connection opened, for interrupt()
        self._stopping = threading.Event()
        # For streamed bodies and HEADs (see _follow).
        self._direct = DirectPool(verify, self.user_agent, self._sockets, self.max_per_host)
        self._lock = threading.Lock()

    # --- sessions -------------------------------------------------------------------------------------------

    def session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = _session_class()()
            # Proxies come from hfget's resolved settings (with provenance), never implicitly from the environment,
            # and .netrc must not add credentials behind the user's back.
            session.trust_env = False
            session.verify = self.verify
            session.headers["User-Agent"] = self.user_agent
            with self._lock:
                if self._adapter is None:
                    # Not blocking: requests waits for a free connection without a time limit. Through a proxy the
                    # engine's own cap per origin (scheduler.py) keeps its connections within max_per_host.
                    self._adapter = _tracked_adapter(
                        self._sockets, pool_connections=16, pool_maxsize=self.max_per_host, max_retries=0,
                    )
                session.mount("http://", self._adapter)
                session.mount("https://", self._adapter)
                self._sessions.append(session)
            self._local.session = session
        return session

    def interrupt(self) -> None:
        """Stop now: every request in flight fails at once (its socket is shut, even while waiting for headers),
        retry pauses end, and later requests raise `Cancelled`. For a download being stopped (Ctrl-C, a full
        disk); the client is not used again after it."""
        self._stopping.set()
        self._sockets.interrupt()

    def _pause(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise Cancelled

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
            if self._adapter is not None:
                self._adapter.close()
                self._adapter = None
            self._direct.clear()

    # --- requests -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        grant: TokenGrant | None = None,
        stream: bool = False,
        follow_redirects: bool = True,
        retry: bool = True,
        timeout: tuple[float, float] | None = None,
        max_redirects: int = 10,
    ):
        """Send a request, following redirects by hand so the token never leaves its origin.

        Retries connection resets, timeouts, 429 and 5xx with backoff (honouring Retry-After); returns the last
        response whatever its status. DNS failures and refused connections are not retried: another source will
        do better than waiting.
        """
        attempts = self.retry.attempts if retry else 1
        for attempt in range(attempts):
            if self._stopping.is_set():
                raise Cancelled
            try:
                response = self._follow(
                    method, url, headers or {}, grant, stream, follow_redirects, timeout, max_redirects
                )
            except NetworkError as error:
                if attempt + 1 >= attempts or isinstance(error, (DnsError, TlsError, ProxyError, UnreachableRedirect)) or getattr(error, "refused", False):
                    raise
                self._pause(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and attempt + 1 < attempts:
                retry_after = response.headers.get("Retry-After")
                discard(response)
                self._pause(self.retry.delay(attempt, retry_after))
                continue
            return response
        raise AssertionError("unreachable")

    def _follow(self, method, url, headers, grant, stream, follow_redirects, timeout, max_redirects):
        # Streamed bodies (the transfer engine's pieces, metadata read by read_body) and HEADs skip requests'
        # per-request machinery (session merging, cookie jars, hooks: about half a millisecond of CPU each, paid
        # hundreds of times per large file) and go to the lean client (http_direct.py, http1.py); a download
        # without a proxy then never imports requests (a tenth of a second of start-up). Through a proxy, requests
        # does it all.
        direct = stream or method == "HEAD"
        seen: list[str] = []
        current = url
        for _ in range(max_redirects + 1):
            request_headers = dict(headers)
            if grant is not None and grant.applies_to(current):
                request_headers["Authorization"] = f"Bearer {grant.token}"
            proxy = self.proxy.for_url(current)
            try:
                if direct and proxy is None:
                    response = self._direct.send(method, current, request_headers, timeout or self.timeout)
                else:
                    response = self.session().request(
                        method,
                        current,
                        headers=request_headers,
                        stream=stream,
                        allow_redirects=False,
                        timeout=timeout or self.timeout,
                        proxies={"http": proxy.url, "https": proxy.url} if proxy else {},
                    )
            except transport_errors() as exc:
                error = classify_exception(exc, current, proxy)
                if seen:
                    raise _unreachable_redirect(error, seen[-1], current) from None
                raise error from None
            if response.status_code == 407 and proxy is not None:
                response.close()
                raise proxy_auth_error(proxy, current)
            if not follow_redirects or response.status_code not in REDIRECT_CODES:
                return response
            location = response.headers.get("Location")
            if not location:
                return response
            seen.append(current)
            # Read the redirect's small body: its connection then goes back to the pool, and a same-origin redirect
            # (the hub's 307 to /api/resolve-cache for every small file) is followed on that same connection.
            # Closing it unread dropped the connection: a new TCP (and TLS) handshake for every file.
            discard(response)
            current = urljoin(current, location)
            if current in seen:
                break
            if response.status_code == 303:
                method = "GET"
        raise ServerError(
            f"{host_label(url)} sent a redirect loop (more than {max_redirects} redirects, or back to a URL already "
            "visited).",
            "The server is misconfigured; try another source.",
        )

    def iter_body(self, response, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream a body, yielding bytes as soon as they arrive and turning failures into hfget errors.

        `read1` returns whatever the socket has (up to `chunk_size`), so when a connection breaks mid-body every
        byte received before the break has already been yielded: a resume then re-fetches nothing twice.

        A read timeout catches a server that goes silent, not one that trickles a byte every few seconds: so a
        body that delivers less than `TRICKLE_BYTES` in any read-timeout window is stopped as stalled too.
        """
        import urllib3.exceptions as u3

        raw = response.raw
        window = self.timeout[1]
        window_start, window_bytes = time.monotonic(), 0
        try:
            while True:
                block = raw.read1(chunk_size, decode_content=True)
                if not block:
                    if raw.length_remaining:  # the server promised more than it sent
                        raise u3.IncompleteRead(raw.tell(), raw.length_remaining)
                    return
                window_bytes += len(block)
                now = time.monotonic()
                if now - window_start >= window:
                    if window_bytes < TRICKLE_BYTES:
                        raise NetworkTimeout(
                            f"{host_label(response.url)} is trickling: {window_bytes} bytes in the last "
                            f"{now - window_start:.0f} s.",
                            "The server or the route to it is stalled; hfget moves on to another source.",
                        )
                    window_start, window_bytes = now, 0
                yield block
        except (*transport_errors(), OSError) as exc:
            raise classify_exception(exc, response.url, self.proxy.for_url(response.url)) from None

    def read_body(self, response, limit: int) -> bytes:
        """A whole (metadata) body, read with the same stall rules, refused past `limit` bytes."""
        out = bytearray()
        with response:
            for block in self.iter_body(response, 256 * 1024):
                out += block
                if len(out) > limit:
                    raise ProtocolError(
                        f"{host_label(response.url)} sent more than {limit // 1_000_000} MB of metadata for one "
                        "request; hfget stopped reading.",
                        "The server is broken or hostile; use another source.",
                    )
        return bytes(out)


    def json_body(self, response, limit: int = 64_000_000) -> tuple[bool, object]:
        """(True, data) for a JSON body, (False, None) for anything else; read under the stall and size rules."""
        import json

        try:
            return True, json.loads(self.read_body(response, limit))
        except ValueError:
            return False, None


TRICKLE_BYTES = 16 * 1024


def discard(response) -> None:
    """Done with a response whose body nobody needs (a redirect, a status to retry): read it when it is small, so
    its keep-alive connection goes back to the pool, else close it (the connection cannot be reused unread)."""
    raw = getattr(response, "raw", None)
    length = response.headers.get("Content-Length")
    small = length is not None and length.isdigit() and int(length) <= REDIRECT_BODY_LIMIT
    if raw is not None and small:
        try:
            raw.read(REDIRECT_BODY_LIMIT, decode_content=False)  # to its end: urllib3 then releases the connection
        except (*transport_errors(), OSError):
            pass  # the connection is broken: closing it below is all there is to do
    response.close()


def _unreachable_redirect(error: NetworkError, origin_url: str, target_url: str) -> NetworkError:
    """A redirect target that does not resolve, refuses connections or fails TLS is the redirect's problem, not the
    server's that sent it: say so (sources add which file and what to do). Other failures there stay as they are
    (a timeout or a reset may pass; they are retried)."""
    if isinstance(error, DnsError):
        why = "which does not resolve here (DNS lookup failed)"
    elif isinstance(error, TlsError):
        why = "where the TLS handshake fails"
    elif getattr(error, "refused", False):
        why = "which refuses connections"
    else:
        return error
    target = host_label(target_url)
    return UnreachableRedirect(
        f"{host_label(origin_url)} redirected the download to host {target}, {why}.",
        f"Another source may serve it; or reach {target} through a proxy (--proxy socks5h://HOST:PORT).",
        origin_url=origin_url, target_url=target_url, cause=error, why=why,
    )


@functools.cache  # one class, defined when the first session is made (a class holds no state of a call)
def _session_class():
    """requests.Session without its own redirect machinery: `_follow` follows redirects itself (the token rules
    need it). requests still works out the next request of every redirect for `response.next`, rebuilding proxy
    credentials as latin-1 on the way — a crash for any other password — and spending CPU on every hub 307."""
    import requests

    class Session(requests.Session):
        def resolve_redirects(self, *args, **kwargs):
            return iter(())

    return Session


def _tracked_adapter(sockets: SocketRegistry, **kwargs):
    """A requests HTTPAdapter whose pools (direct and through proxies) register their connections in `sockets`."""
    from requests.adapters import HTTPAdapter

    class TrackedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kw) -> None:
            super().init_poolmanager(*args, **kw)
            sockets.track(self.poolmanager)

        def proxy_headers(self, proxy):
            return basic_auth_header(proxy)  # any password, not only the latin-1 ones requests can encode

        def proxy_manager_for(self, proxy, **kw):
            fresh = proxy not in self.proxy_manager
            manager = super().proxy_manager_for(proxy, **kw)
            if fresh:
                sockets.track(manager)
            return manager

    return TrackedAdapter(**kwargs)
