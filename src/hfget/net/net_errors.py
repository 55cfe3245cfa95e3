"""Network failures turned into the hfget error a user can act on: DNS, connect, TLS, timeout, proxy, each with
the hint that names the fix. Works on whatever requests, urllib3, PySocks or the socket layer raised."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

from ..errors import ConnectError, DnsError, NetworkError, NetworkTimeout, ProxyError, TlsError
from .proxy import Proxy
from .urls import host_label

_RETRY_HINT = "Run the same command again: finished files are kept and partial ones resume."


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk an exception and everything nested in it (args, reason, cause, context)."""
    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nested in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args):
            if isinstance(nested, BaseException):
                stack.append(nested)


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
    import socket
    import ssl

    import urllib3.exceptions as u3

    host = host_label(url)
    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain)

    # socks5:// and socks4:// leave DNS to this machine: a name that does not resolve here is a DNS failure, not the
    # proxy's (PySocks wraps it in a "general proxy error").
    local_dns = proxy is not None and proxy.scheme in ("socks5", "socks4") and (
        any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text
    )
    if proxy is not None and not local_dns:
        proxy_error = _proxy_failure(chain, text, proxy, host)
        if proxy_error is not None:
            return proxy_error
    if isinstance(exc, _requests_errors("SSLError")) or any(isinstance(e, ssl.SSLError) for e in chain):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            error: NetworkError = TlsError(
                f"The TLS certificate of {host} could not be verified: {_short(exc)}.",
                "A firewall or proxy may be intercepting HTTPS. Point REQUESTS_CA_BUNDLE at your organisation's CA "
                "bundle, or use a mirror or proxy you trust.",
            )
        else:
            error = TlsError(
                f"The TLS handshake with {host} failed: {_short(exc)}.",
                "The connection is being tampered with or the server does not speak HTTPS here; try a mirror or a "
                "proxy.",
            )
    elif any(isinstance(e, (socket.gaierror, u3.NameResolutionError)) for e in chain) or (
        "Name or service not known" in text or "nodename nor servname" in text
    ):
        error = DnsError(
            f"The host name of {host} does not resolve here (DNS lookup failed).",
            "If huggingface.co is blocked on this network, use a mirror (--endpoint https://hf-mirror.com, or "
            "HF_ENDPOINT=https://hf-mirror.com in .env) or a proxy (--proxy socks5h://HOST:PORT).",
        )
    elif any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        error = ConnectError(
            f"Connection to {host} was refused: nothing is listening there.",
            "Check the endpoint URL and port; if it is a local mirror, start it.",
            refused=True,
        )
    elif isinstance(exc, _requests_errors("ConnectTimeout")) or any(
        # urllib3's NewConnectionError subclasses ConnectTimeoutError: only a real timeout counts here
        isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError)
        for e in chain
    ):
        error = NetworkTimeout(
            f"Connecting to {host} timed out.",
            "The host is unreachable or filtered from here; use a mirror or a proxy.",
        )
    elif isinstance(exc, (*_requests_errors("ReadTimeout", "Timeout"), socket.timeout)) or any(
        isinstance(e, (u3.ReadTimeoutError, TimeoutError)) for e in chain
    ):
        error = NetworkTimeout(f"{host} stopped answering (read timed out).", _RETRY_HINT)
    elif any(isinstance(e, ConnectionResetError) for e in chain):
        error = ConnectError(f"The connection to {host} was reset by the other side.", _RETRY_HINT)
    elif any(isinstance(e, u3.IncompleteRead) for e in chain) or "IncompleteRead" in text:
        error = ConnectError(f"{host} closed the connection before the end of the body.", _RETRY_HINT)
    else:
        error = ConnectError(f"The connection to {host} failed: {_short(exc)}.", _RETRY_HINT)
    if proxy is not None:
        error.message = error.message.rstrip(".") + f" (through the proxy {proxy.masked})."
    if local_dns and isinstance(error, DnsError):
        remote = "socks5h://" + proxy.masked.split("://", 1)[1]
        error.hint = (f"With {proxy.scheme}:// this machine resolves host names itself; write the proxy as {remote} "
                      "so that the proxy resolves them.")
    return error


def _proxy_failure(chain: list[BaseException], text: str, proxy: Proxy, host: str) -> ProxyError | None:
    """The errors that are the proxy's own: unreachable, refusing, auth failure, protocol mismatch."""
    proxy_errors = _requests_errors("ProxyError")
    try:
        import socks
    except ImportError:  # pragma: no cover - requests[socks] is a dependency
        socks = None
    where = proxy.describe()
    lowered = text.lower()
    if "407" in text or "authentication" in lowered or (socks and any(isinstance(e, socks.SOCKS5AuthError) for e in chain)):
        return proxy_auth_error(proxy, host)
    proxy_connect = socks is not None and any(isinstance(e, socks.ProxyConnectionError) for e in chain)
    if proxy_connect or any(isinstance(e, proxy_errors) for e in chain) and (
        "refused" in lowered or "unable to connect to proxy" in lowered or "timed out" in lowered
    ):
        return ProxyError(
            f"The proxy {where} cannot be reached: {_short(chain[0])}.",
            "Start the proxy, or fix its host and port; without it, try --source modelscope or a mirror.",
        )
    general = socks is not None and any(isinstance(e, socks.GeneralProxyError) for e in chain)
    if general and proxy.has_credentials and "closed unexpectedly" in lowered:
        # RFC 1929 says a proxy answers bad credentials with a status; many (pproxy, some ssh setups) just hang up.
        return proxy_auth_error(proxy, host)
    if general:
        return ProxyError(
            f"The proxy {where} did not answer as a {proxy.scheme} proxy: {_short(chain[0])}.",
            "Check the proxy's scheme (http:// vs socks5h://) and port.",
        )
    if any(isinstance(e, proxy_errors) for e in chain):
        return ProxyError(
            f"The proxy {where} failed to forward the request to {host}: {_short(chain[0])}.",
            "Check that the proxy can reach the internet (or the host); try another proxy or source.",
        )
    return None


def _short(exc: BaseException) -> str:
    """The innermost useful words of an exception: "connection refused", not urllib3's nested reprs."""
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
    return text.strip().strip("()'\"").rstrip(".")[:300]
