"""Network failures turned into the hfget error a user can act on: DNS, connect, TLS, timeout, proxy, each with
the hint that names the fix. Works on whatever requests, urllib3, PySocks or the socket layer raised.

Classification reads the *types* of the exceptions in the chain (and the status a proxy gave to CONNECT), never
the text: a signed URL whose query happens to contain "407" or "refused" says nothing about the proxy.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ConnectError, DnsError, NetworkError, NetworkTimeout, ProxyError, TlsError
from ..redact import mask_url, mask_urls_in
from .proxy import Proxy
from .urls import host_label

_RETRY_HINT = "Run the same command again: finished files are kept and partial ones resume."
# http.client's (and urllib3's) only way of reporting the proxy's answer to CONNECT: an OSError with this text.
_TUNNEL_STATUS = re.compile(r"Tunnel connection failed: (\d{3})\b")
_SOCKS_HANGUP = "Connection closed unexpectedly"  # PySocks' message when the proxy closes mid-handshake


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk an exception and everything nested in it (args, reason, cause, context, PySocks' socket_err)."""
    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = (getattr(current, "reason", None), getattr(current, "socket_err", None),
                  getattr(current, "original_error", None), current.__cause__, current.__context__, *current.args)
        stack.extend(n for n in nested if isinstance(n, BaseException))


@dataclass(frozen=True)
class Facts:
    """What an exception chain says, read from its types only."""

    dns: bool = False
    refused: bool = False
    connect_timeout: bool = False
    read_timeout: bool = False
    reset: bool = False
    incomplete: bool = False
    tls: bool = False
    tls_cert: bool = False
    no_free_connection: bool = False  # every connection to the host was in use for the whole wait (max_per_host)


def facts_of(chain: list[BaseException]) -> Facts:
    import http.client
    import socket
    import ssl

    import urllib3.exceptions as u3

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    # urllib3's NewConnectionError subclasses ConnectTimeoutError: only a real timeout counts as one
    connect_timeout = has(*_requests_errors("ConnectTimeout")) or any(
        isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError) for e in chain)
    return Facts(
        dns=has(socket.gaierror, u3.NameResolutionError),
        refused=has(ConnectionRefusedError),
        connect_timeout=connect_timeout,
        read_timeout=not connect_timeout and has(u3.ReadTimeoutError, TimeoutError, *_requests_errors("Timeout")),
        reset=has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError),
        incomplete=has(u3.IncompleteRead, http.client.IncompleteRead, u3.InvalidChunkLength),
        tls=has(ssl.SSLError, u3.SSLError, *_requests_errors("SSLError")),
        tls_cert=has(ssl.SSLCertVerificationError),
        no_free_connection=has(u3.EmptyPoolError),
    )


def proxy_auth_error(proxy: Proxy, url: str) -> ProxyError:
    creds = "the user and password in the proxy URL were rejected" if proxy.has_credentials else "the proxy URL has none"
    status = " (HTTP 407)" if proxy.scheme in ("http", "https") else ""
    return ProxyError(
        f"The proxy {proxy.describe()} refused to forward the request to {host_label(url)}: it requires "
        f"authentication{status}, and {creds}.",
        "Put the right user and password in the proxy URL: scheme://USER:PASSWORD@host:port.",
    )


def transport_errors() -> tuple[type[BaseException], ...]:
    """What the HTTP layers raise: urllib3's errors, and requests' once a session has loaded it."""
    import urllib3.exceptions as u3

    return (u3.HTTPError, *_requests_errors("RequestException"))


def _requests_errors(*names: str) -> tuple[type[BaseException], ...]:
    """requests' exception classes if requests is loaded, else none: the direct path never imports it (see
    `_follow`), and then none of its exceptions can have been raised."""
    if "requests" not in sys.modules:
        return ()
    # Through the import system, not sys.modules: another thread may be importing requests right now (a proxied
    # probe), and import_module waits until that module is complete instead of handing out a half-made one.
    exceptions = importlib.import_module("requests.exceptions")
    return tuple(getattr(exceptions, name) for name in names)


def classify_exception(exc: BaseException, url: str, proxy: Proxy | None = None) -> NetworkError:
    """Map a requests/urllib3/socket exception to the hfget error a user can act on."""
    host = host_label(url)
    chain = list(_chain(exc))
    facts = facts_of(chain)
    # socks5:// and socks4:// leave DNS to this machine: a name that does not resolve here is a DNS failure, not the
    # proxy's (PySocks wraps it in a "general proxy error").
    local_dns = proxy is not None and proxy.scheme in ("socks5", "socks4") and facts.dns
    if proxy is not None and not local_dns:
        proxy_error = _proxy_failure(chain, facts, proxy, host)
        if proxy_error is not None:
            return proxy_error
    error = _endpoint_failure(facts, exc, host)
    if proxy is not None:
        error.message = error.message.rstrip(".") + f" (through the proxy {proxy.masked})."
    if local_dns and isinstance(error, DnsError):
        remote = "socks5h://" + proxy.masked.split("://", 1)[1]
        error.hint = (f"With {proxy.scheme}:// this machine resolves host names itself; write the proxy as {remote} "
                      "so that the proxy resolves them.")
    return error


def _endpoint_failure(facts: Facts, exc: BaseException, host: str) -> NetworkError:
    """The failure of the connection to the endpoint itself (directly, or past a proxy that did its part)."""
    if facts.tls_cert:
        return TlsError(
            f"The TLS certificate of {host} could not be verified: {_short(exc)}.",
            "A firewall or proxy may be intercepting HTTPS. Point REQUESTS_CA_BUNDLE at your organisation's CA "
            "bundle, or use a mirror or proxy you trust.",
        )
    if facts.tls:
        return TlsError(
            f"The TLS handshake with {host} failed: {_short(exc)}.",
            "The connection is being tampered with or the server does not speak HTTPS here; try a mirror or a proxy.",
        )
    if facts.dns:
        return DnsError(
            f"The host name of {host} does not resolve here (DNS lookup failed).",
            "If huggingface.co is blocked on this network, use a mirror (--endpoint https://hf-mirror.com, or "
            "HF_ENDPOINT=https://hf-mirror.com in .env) or a proxy (--proxy socks5h://HOST:PORT).",
        )
    if facts.refused:
        return ConnectError(f"Connection to {host} was refused: nothing is listening there.",
                            "Check the endpoint URL and port; if it is a local mirror, start it.", refused=True)
    if facts.connect_timeout:
        return NetworkTimeout(f"Connecting to {host} timed out.",
                              "The host is unreachable or filtered from here; use a mirror or a proxy.")
    if facts.read_timeout:
        return NetworkTimeout(f"{host} stopped answering (read timed out).", _RETRY_HINT)
    if facts.no_free_connection:
        return NetworkTimeout(f"No connection to {host} came free in time: all that --max-per-host allows were busy.",
                              "Run the same command again; if it recurs, raise --max-per-host.")
    if facts.reset:
        return ConnectError(f"The connection to {host} was reset by the other side.", _RETRY_HINT)
    if facts.incomplete:
        return ConnectError(f"{host} closed the connection before the end of the body.", _RETRY_HINT)
    return ConnectError(f"The connection to {host} failed: {_short(exc)}.", _RETRY_HINT)


def _proxy_failure(chain: list[BaseException], facts: Facts, proxy: Proxy, host: str) -> ProxyError | None:
    """The errors that are the proxy's own: unreachable, refusing, auth failure, protocol mismatch."""
    import urllib3.exceptions as u3

    try:
        import socks
    except ImportError:  # pragma: no cover - requests[socks] is a dependency
        socks = None
    where = proxy.describe()
    # urllib3 wraps whatever went wrong on the way to (or at) the proxy in its ProxyError; what is inside says what.
    at_proxy = next((e for e in chain if isinstance(e, u3.ProxyError)), None)
    inside = facts_of(list(_chain(at_proxy))[1:]) if at_proxy is not None else Facts()
    tunnel = _tunnel_status(chain)

    def named(*names: str) -> bool:
        return socks is not None and any(isinstance(e, tuple(getattr(socks, n) for n in names)) for e in chain)

    if tunnel == 407 or named("SOCKS5AuthError"):
        return proxy_auth_error(proxy, host)
    if at_proxy is not None and inside.tls and proxy.scheme == "https":
        plain = f"http://{mask_url(proxy.url).split('://', 1)[1]}"
        if inside.tls_cert:
            return ProxyError(f"The TLS certificate of the proxy {where} could not be verified.",
                              f"If the proxy speaks plain HTTP (most local proxies do), use {plain}; otherwise point "
                              "REQUESTS_CA_BUNDLE at the CA that signed its certificate.")
        return ProxyError(
            f"The proxy {where} does not speak TLS: the TLS handshake with it failed. This proxy speaks plain HTTP.",
            f"Use {plain}: https:// in front of a proxy means TLS to the proxy itself, which Clash and most local "
            "proxies do not speak (https downloads still go through it encrypted).",
        )
    remote_dns = proxy.scheme in ("socks5h", "socks4a") and facts.dns  # only the proxy's own name is resolved here
    if named("ProxyConnectionError") or remote_dns or (at_proxy is not None and tunnel is None and (
            inside.refused or inside.connect_timeout or inside.dns or inside.reset)):
        why = ("its host name does not resolve" if (inside.dns or remote_dns) else "connection refused"
               if (inside.refused or facts.refused) else "timed out" if (inside.connect_timeout or facts.read_timeout
               or facts.connect_timeout) else "the connection failed")
        return ProxyError(f"The proxy {where} cannot be reached: {why}.",
                          "Start the proxy, or fix its host and port; without it, try --source modelscope or a mirror.")
    if tunnel is not None:
        return ProxyError(f"The proxy {where} refused to open a connection to {host} (HTTP {tunnel}).",
                          "The proxy cannot reach that host or blocks it: check the proxy's rules, or try another "
                          "proxy or source.")
    if socks is not None:
        socks_error = _socks_failure(chain, proxy, host, socks)
        if socks_error is not None:
            return socks_error
    if at_proxy is not None or any(isinstance(e, _requests_errors("ProxyError")) for e in chain):
        return ProxyError(f"The proxy {where} failed to forward the request to {host}: {_short(chain[0])}.",
                          "Check that the proxy can reach the internet (or the host); try another proxy or source.")
    return None


def _socks_failure(chain: list[BaseException], proxy: Proxy, host: str, socks) -> ProxyError | None:
    """What PySocks' own exception types say: a hang-up in the handshake, the proxy's failure reply, a protocol
    mismatch."""
    where = proxy.describe()
    if any(isinstance(e, socks.GeneralProxyError) and getattr(e, "msg", None) == _SOCKS_HANGUP for e in chain):
        # RFC 1929 says a proxy answers bad credentials with a status; many (pproxy, some ssh setups) just hang up,
        # and so does a proxy that does not speak SOCKS at all.
        if proxy.has_credentials:
            error = proxy_auth_error(proxy, host)
            error.message = error.message.rstrip(".") + " (it hung up during the SOCKS handshake)."
            error.hint += " If it is not a SOCKS proxy at all (Clash's 7890 speaks HTTP), write http:// instead."
            return error
        return ProxyError(f"The proxy {where} hung up during the SOCKS handshake: it requires a user and password, or "
                          "it is not a SOCKS proxy.", "Add USER:PASSWORD@ to the proxy URL if it needs them; an HTTP "
                          "proxy (Clash's 7890) needs http://, not socks5h://.")
    if any(isinstance(e, (socks.SOCKS5Error, socks.SOCKS4Error)) for e in chain):
        return ProxyError(f"The proxy {where} could not connect to {host}: {_short(chain[0])}.",
                          "The proxy cannot reach that host or blocks it: check the proxy's rules, or try another "
                          "proxy or source.")
    if any(isinstance(e, socks.ProxyError) for e in chain):
        return ProxyError(f"The proxy {where} did not answer as a {proxy.scheme} proxy: {_short(chain[0])}.",
                          "Check the proxy's scheme (http:// vs socks5h://) and port.")
    return None


def _tunnel_status(chain: list[BaseException]) -> int | None:
    """The status the proxy answered CONNECT with, when it was not 200 (http.client raises a bare OSError)."""
    for e in chain:
        if type(e) is OSError and e.args and isinstance(e.args[0], str):
            match = _TUNNEL_STATUS.match(e.args[0])
            if match:
                return int(match.group(1))
    return None


def _short(exc: BaseException) -> str:
    """The innermost useful words of an exception: "connection refused", not urllib3's nested reprs. Any URL in
    them is shown with its credentials masked."""
    for nested in _chain(exc):
        if isinstance(nested, ConnectionRefusedError):
            return "connection refused"
        if isinstance(nested, TimeoutError):
            return "timed out"
    text = str(exc)
    if "Caused by " in text:
        text = text.split("Caused by ", 1)[1]
    for noise in ("Failed to establish a new connection: ",):
        if noise in text:
            text = text.split(noise, 1)[1]
    if ": " in text and text.startswith(("NewConnectionError", "<urllib3", "ProxyError(")):
        text = text.split(": ", 1)[1]
    return mask_urls_in(text.strip().strip("()'\"").rstrip("."))[:300]
